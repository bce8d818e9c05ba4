"""Benchmarks of riskmon (``make bench``); see benchmarks/README.md.

The targets are per core: numerical libraries get one thread each unless the caller set the
variables, so that an eigendecomposition does not borrow the second core of the machine. This
must happen before NumPy is imported, hence here. ``DEFAULTED`` names the variables set here
(not by the caller), which benchmarks of whole riskmon processes leave out of their
environment, so that those run as a user would start them.
"""

import os

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
DEFAULTED = tuple(v for v in THREAD_VARIABLES if v not in os.environ)
for _variable in DEFAULTED:
    os.environ[_variable] = "1"

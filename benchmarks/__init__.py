"""Benchmarks of riskmon (``make bench``); see benchmarks/README.md.

The targets are per core: numerical libraries get one thread each unless the caller set the
variables, so that an eigendecomposition does not borrow the second core of the machine. This
must happen before NumPy is imported, hence here.
"""

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

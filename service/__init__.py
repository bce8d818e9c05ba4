"""The composition layer: daemon, roles, CLI, HTTP, metrics, checkpoints, systemd, demo.

Numerical libraries get one thread each unless the environment says otherwise, set here,
before NumPy is first imported by a riskmon process: the engine's matrices are small (tens to
a few hundred symbols), where a multi-threaded BLAS is slower than one thread (an
eigendecomposition of 50 symbols took 2.4 ms with two threads, 0.2 ms with one, on the 2-core
machine of benchmarks/README.md), and its threads would compete with the event loop and a
replay's reader thread for the cores.
"""

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

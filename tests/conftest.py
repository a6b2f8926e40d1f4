import os

# the package's tests draw no figures on screen
os.environ.setdefault("MPLBACKEND", "Agg")
# one BLAS thread per test process (pytest runs two at once; see the Makefile); notebook
# kernels started by the tests inherit this
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

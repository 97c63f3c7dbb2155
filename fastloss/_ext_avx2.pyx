# Kernels compiled for the "avx2" instruction set: see _kernels.pxi and setup.py.
include "_kernels.pxi"

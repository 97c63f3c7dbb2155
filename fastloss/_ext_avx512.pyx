# Kernels compiled for the "avx512" instruction set: see _kernels.pxi and setup.py.
include "_kernels.pxi"

# Kernels compiled for the "baseline" instruction set: see _kernels.pxi and setup.py.
include "_kernels.pxi"

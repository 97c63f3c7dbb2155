# The whole kernel module. Each _ext_<isa>.pyx includes this file, and setup.py compiles each
# with its own instruction-set flags; fastloss._config picks the best the CPU supports.
include "_common.pxi"
include "_elementwise.pxi"
include "_rowwise.pxi"
include "_entry.pxi"

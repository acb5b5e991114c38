"""fsrlib: feature super-resolution (Tan, Yan, Bare, CVPR 2018), reproduced and tested."""
__version__ = "0.1.0"

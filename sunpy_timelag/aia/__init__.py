"""
AIA instrument corrections on plain arrays (NumPy or CuPy) and sunpy Maps.

`psf` computes the channel point spread function as aiapy defines it; `deconvolve` and `Deconvolver`
apply Richardson-Lucy deconvolution with it.
"""
from .deconvolve import Deconvolver, deconvolve
from .psf import psf

__all__ = ["psf", "deconvolve", "Deconvolver"]

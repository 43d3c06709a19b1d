"""
AIA instrument corrections on plain arrays (NumPy or CuPy) and sunpy Maps.

`psf` computes the channel point spread function as aiapy defines it; `deconvolve` and `Deconvolver`
apply Richardson-Lucy deconvolution with it; `register` takes level-1 images to level 1.5 as aiapy
does (importing it registers the ``"sunpy_timelag"`` rotation method with sunpy).
"""
from .deconvolve import Deconvolver, deconvolve
from .psf import psf
from .register import register

__all__ = ["psf", "deconvolve", "Deconvolver", "register"]

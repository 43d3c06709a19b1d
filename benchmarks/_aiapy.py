"""
The installed aiapy, whatever its release: its PSF and deconvolution on the CPU (or with JAX), and a line
saying which aiapy computes them how.

aiapy 0.11 renamed ``psf`` to ``calculate_psf``, dropped ``use_gpu=`` (CuPy) from both functions, and
computes them with JAX when JAX is installed (else NumPy). Before 0.11, ``use_gpu=False`` keeps them on
NumPy even where CuPy is installed.
"""
import sys

import aiapy
import aiapy.psf

from sunpy_timelag.aia._compat import aiapy_deconvolve, aiapy_psf

__all__ = ["USES_JAX", "aiapy_psf", "aiapy_deconvolve", "engine", "describe"]

#: Whether aiapy imported JAX for its PSF and deconvolution (aiapy >= 0.11 with JAX installed).
USES_JAX = hasattr(aiapy.psf, "calculate_psf") and "jax" in sys.modules


def engine():
    """What aiapy's PSF and deconvolution run on, e.g. ``'JAX 0.12.0 (cpu)'`` or ``'NumPy'``."""
    if not USES_JAX:
        return "NumPy"
    jax = sys.modules["jax"]
    return f"JAX {jax.__version__} ({jax.default_backend()})"


def describe():
    """One line: the aiapy version and the engine of its PSF and deconvolution."""
    return f"aiapy {aiapy.__version__}, PSF and deconvolution with {engine()}"

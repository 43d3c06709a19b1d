"""
The installed aiapy, whatever its release: its PSF and deconvolution on the CPU (or with JAX), and a line
saying which aiapy computes them how.

aiapy 0.11 renamed ``psf`` to ``calculate_psf``, dropped ``use_gpu=`` (CuPy) from both functions, and
computes them with JAX when JAX is installed (else NumPy). Before 0.11, ``use_gpu=False`` keeps them on
NumPy even where CuPy is installed.
"""
import inspect
import sys

import aiapy
import aiapy.psf

#: Whether aiapy imported JAX for its PSF and deconvolution (aiapy >= 0.11 with JAX installed).
USES_JAX = hasattr(aiapy.psf, "calculate_psf") and "jax" in sys.modules


def aiapy_psf(channel, **kwargs):
    """aiapy's PSF: ``calculate_psf`` (aiapy >= 0.11), else ``psf(..., use_gpu=False)``."""
    if hasattr(aiapy.psf, "calculate_psf"):
        return aiapy.psf.calculate_psf(channel, **kwargs)
    return aiapy.psf.psf(channel, use_gpu=False, **kwargs)


def aiapy_deconvolve(smap, **kwargs):
    """aiapy's ``deconvolve``, with ``use_gpu=False`` where it has that option (aiapy < 0.11)."""
    if "use_gpu" in inspect.signature(aiapy.psf.deconvolve).parameters:
        kwargs["use_gpu"] = False
    return aiapy.psf.deconvolve(smap, **kwargs)


def engine():
    """What aiapy's PSF and deconvolution run on, e.g. ``'JAX 0.12.0 (cpu)'`` or ``'NumPy'``."""
    if not USES_JAX:
        return "NumPy"
    jax = sys.modules["jax"]
    return f"JAX {jax.__version__} ({jax.default_backend()})"


def describe():
    """One line: the aiapy version and the engine of its PSF and deconvolution."""
    return f"aiapy {aiapy.__version__}, PSF and deconvolution with {engine()}"

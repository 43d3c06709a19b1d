"""
What differs between the aiapy releases this package supports (0.9 to 0.12).

aiapy 0.11 moved its warning class to ``aiapy.utils``, renamed ``aiapy.psf.psf`` to
``calculate_psf``, dropped ``use_gpu=`` (CuPy) from the PSF and the deconvolution and computes
them with JAX where JAX is installed (else NumPy). The package itself needs only the warning
class; the tests and the benchmarks compare with aiapy's PSF and deconvolution through the other
two functions, whatever aiapy is installed.
"""
import inspect

__all__ = ["aiapy_user_warning", "aiapy_psf", "aiapy_deconvolve"]


def aiapy_user_warning():
    """
    aiapy's user warning class: ``aiapy.utils.AIApyUserWarning`` since aiapy 0.11,
    ``aiapy.util.AIApyUserWarning`` in 0.10, ``aiapy.util.AiapyUserWarning`` in 0.9.

    Imported when a warning is issued, not with the module: aiapy imports sunpy, which the array
    kernels otherwise do without.

    Returns
    -------
    type
        The warning class, a `UserWarning` subclass, so that filtering it silences ours as it
        silences aiapy's.
    """
    try:
        from aiapy.utils import AIApyUserWarning
    except ImportError:  # aiapy < 0.11
        import aiapy.util

        return getattr(aiapy.util, "AIApyUserWarning", None) or aiapy.util.AiapyUserWarning
    return AIApyUserWarning


def aiapy_psf(channel, **kwargs):
    """
    aiapy's PSF of ``channel`` with the installed aiapy, never on a CuPy GPU.

    ``aiapy.psf.calculate_psf`` (aiapy >= 0.11, with JAX if installed), else
    ``aiapy.psf.psf(..., use_gpu=False)``; ``kwargs`` go to it.
    """
    import aiapy.psf

    if hasattr(aiapy.psf, "calculate_psf"):
        return aiapy.psf.calculate_psf(channel, **kwargs)
    return aiapy.psf.psf(channel, use_gpu=False, **kwargs)


def aiapy_deconvolve(smap, **kwargs):
    """
    ``aiapy.psf.deconvolve`` of a map with the installed aiapy, never on a CuPy GPU.

    ``use_gpu=False`` where aiapy has that option (< 0.11; later releases use JAX if installed).
    """
    import aiapy.psf

    if "use_gpu" in inspect.signature(aiapy.psf.deconvolve).parameters:
        kwargs["use_gpu"] = False
    return aiapy.psf.deconvolve(smap, **kwargs)

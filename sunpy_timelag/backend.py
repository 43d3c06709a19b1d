"""
Array-module dispatch: one code path for NumPy and CuPy.

Every numerical kernel in this package asks the functions here for the
module that matches its input (``numpy`` or ``cupy``) and for the matching
FFT and ``ndimage`` modules, so the same code runs on the CPU and on an
NVIDIA GPU. CuPy is optional: nothing here imports it unless it is installed,
and a NumPy input never touches it.
"""
import importlib.util

import numpy as np

__all__ = [
    "array_module", "fft_module", "ndimage_module", "special_module", "scipy_module", "is_cupy_array", "to_numpy",
    "cupy_available", "real_fft", "inverse_real_fft",
]


def cupy_available():
    """
    Whether CuPy is installed and can see a GPU.

    Returns
    -------
    bool
    """
    if importlib.util.find_spec("cupy") is None:
        return False
    import cupy

    try:
        return cupy.cuda.runtime.getDeviceCount() > 0
    except cupy.cuda.runtime.CUDARuntimeError:
        return False


def is_cupy_array(array):
    """
    Whether ``array`` is a CuPy array (or a Dask array of CuPy chunks).

    Parameters
    ----------
    array : array-like

    Returns
    -------
    bool
    """
    meta = getattr(array, "_meta", array)  # a Dask array describes its chunks in ``_meta``
    return type(meta).__module__.split(".")[0] == "cupy"


def array_module(array):
    """
    The array module (``numpy`` or ``cupy``) that operates on ``array``.

    Parameters
    ----------
    array : array-like
        A NumPy or CuPy array, or a Dask array of either.

    Returns
    -------
    module
    """
    if is_cupy_array(array):
        import cupy

        return cupy
    return np


def fft_module(xp):
    """`scipy.fft`, or `cupyx.scipy.fft` for ``xp`` ``cupy`` (see `scipy_module`)."""
    return scipy_module(xp, "fft")


def real_fft(x, out=None):
    """
    The real FFT of ``x`` along axis 0, written into ``out`` where the array module can.

    NumPy's `numpy.fft.rfft` writes into ``out`` (a reused buffer costs no fresh memory); CuPy's
    transform returns a new array from CuPy's memory pool, which is as cheap.

    Parameters
    ----------
    x : array
        Real, NumPy or CuPy.
    out : array, optional
        Complex, of shape ``(x.shape[0] // 2 + 1, *x.shape[1:])``.

    Returns
    -------
    array
    """
    if is_cupy_array(x):
        return fft_module(array_module(x)).rfft(x, axis=0)
    return np.fft.rfft(x, axis=0, out=out)


def inverse_real_fft(spectrum, n, out=None):
    """
    The inverse of `real_fft`, to ``n`` samples along axis 0, written into ``out`` where the array module can.

    Parameters
    ----------
    spectrum : array
        Complex, NumPy or CuPy.
    n : int
    out : array, optional
        Real, of shape ``(n, *spectrum.shape[1:])``.

    Returns
    -------
    array
    """
    if is_cupy_array(spectrum):
        return fft_module(array_module(spectrum)).irfft(spectrum, n=n, axis=0, overwrite_x=True)
    return np.fft.irfft(spectrum, n=n, axis=0, out=out)


def ndimage_module(xp):
    """`scipy.ndimage`, or `cupyx.scipy.ndimage` for ``xp`` ``cupy`` (see `scipy_module`)."""
    return scipy_module(xp, "ndimage")


def special_module(xp):
    """`scipy.special`, or `cupyx.scipy.special` for ``xp`` ``cupy`` (see `scipy_module`)."""
    return scipy_module(xp, "special")


def scipy_module(xp, name):
    """
    The SciPy submodule ``name`` for the array module ``xp``.

    Parameters
    ----------
    xp : module
        ``numpy`` or ``cupy``.
    name : str
        ``"fft"``, ``"ndimage"`` or ``"special"``.

    Returns
    -------
    module
        ``scipy.<name>``, or ``cupyx.scipy.<name>`` for ``cupy`` (imported only then).
    """
    return importlib.import_module(f"scipy.{name}" if xp is np else f"cupyx.scipy.{name}")


def to_numpy(array):
    """
    A NumPy copy of ``array`` (a no-op for NumPy arrays).

    Parameters
    ----------
    array : array-like
        A NumPy or CuPy array.

    Returns
    -------
    numpy.ndarray
    """
    if is_cupy_array(array):
        return array.get()
    return np.asarray(array)

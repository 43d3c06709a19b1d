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
import scipy.fft
import scipy.ndimage
import scipy.special

__all__ = [
    "array_module", "fft_module", "ndimage_module", "special_module", "is_cupy_array", "to_numpy", "cupy_available",
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
    """
    The ``scipy.fft``-compatible module for the array module ``xp``.

    Parameters
    ----------
    xp : module
        ``numpy`` or ``cupy``.

    Returns
    -------
    module
        `scipy.fft` or `cupyx.scipy.fft`.
    """
    if xp is np:
        return scipy.fft
    import cupyx.scipy.fft

    return cupyx.scipy.fft


def ndimage_module(xp):
    """
    The ``scipy.ndimage``-compatible module for the array module ``xp``.

    Parameters
    ----------
    xp : module
        ``numpy`` or ``cupy``.

    Returns
    -------
    module
        `scipy.ndimage` or `cupyx.scipy.ndimage`.
    """
    if xp is np:
        return scipy.ndimage
    import cupyx.scipy.ndimage

    return cupyx.scipy.ndimage


def special_module(xp):
    """
    The ``scipy.special``-compatible module for the array module ``xp``.

    Parameters
    ----------
    xp : module
        ``numpy`` or ``cupy``.

    Returns
    -------
    module
        `scipy.special` or `cupyx.scipy.special`.
    """
    if xp is np:
        return scipy.special
    import cupyx.scipy.special

    return cupyx.scipy.special


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

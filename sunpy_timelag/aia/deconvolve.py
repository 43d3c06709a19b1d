r"""
Richardson-Lucy deconvolution of AIA images with the channel PSF, as `aiapy.psf.deconvolve` does it.

The array code runs on NumPy or CuPy arrays (the array module of the image) and does not import
sunpy (aiapy's warning class is imported only to warn of negative pixels); a sunpy Map is
recognised only if ``sunpy.map`` is already imported. On the CPU the FFTs
use ``ducc0`` when it is installed (the successor of the pocketfft inside `scipy.fft`, with AVX
kernels and output buffers: a Richardson-Lucy iteration costs about 30 % less), else `scipy.fft`.
"""
import copy
import operator
import os
import sys
import threading
import warnings

import numpy as np

from ..backend import array_module, fft_module, to_numpy
from ._compat import aiapy_user_warning
from .psf import _mesh_parameters
from .psf import psf as channel_psf

try:
    import ducc0
except ImportError:
    ducc0 = None

__all__ = ["Deconvolver", "deconvolve", "fit_psf"]


class Deconvolver:
    r"""
    Richardson-Lucy deconvolution with one PSF, reusable across frames.

    With the PSF :math:`P` centred on pixel ``(0, 0)`` (``ifftshift``) and the image :math:`d`
    (negative pixels set to 0), the estimate :math:`u_0 = d` is iterated as in `aiapy.psf.deconvolve`,

    .. math::

        u_{n+1} = u_n \left[\left(\frac{d}{u_n \circledast P}\right) \star P\right]
                = u_n\,\mathcal{F}^{-1}\left\{\mathcal{F}\left\{
                  \frac{d}{\mathcal{F}^{-1}\{\mathcal{F}\{u_n\}\,\hat P\}}\right\}\,\hat P^{*}\right\},

    with periodic boundaries and :math:`\hat P` the real-to-complex FFT of the PSF. :math:`\hat P`
    and :math:`\hat P^*` are computed once per image shape and array module, in the working
    precision, and kept (on the GPU for CuPy images); every iteration then costs two ``rfft2`` and
    two ``irfft2`` of the image and three in-place element-wise operations.

    Where :math:`d = 0` the ratio :math:`d / (u_n \circledast P)` is 0, its value whenever the
    blurred estimate is not exactly 0; it is set so, as the limit, where the blurred estimate rounds
    to exactly 0 too (float32, dark regions), instead of the 0/0 that would make the whole image
    NaN. Since :math:`u_0 = d`, such pixels stay 0.

    Precision: AIA counts are 14-bit, so ``dtype=np.float32`` (the default) is ample: after 25
    iterations it agrees with aiapy's float64 result to :math:`6 \times 10^{-7}` of the image maximum
    (measured on a full 171 Å frame; the requirement is :math:`10^{-5}`). ``dtype=np.float64`` gives
    aiapy's numbers to rounding, :math:`2 \times 10^{-15}` of the maximum (required: :math:`10^{-10}`).

    Images smaller or larger than the PSF: the PSF is cropped or zero-padded about its centre pixel
    to the image shape (see `fit_psf`). Non-finite pixels are set to 0 for the iteration (with a
    warning) and are NaN in the result: aiapy would spread them over the whole image.

    The object is cheap to call repeatedly and to pickle (the transforms are not pickled; a worker
    rebuilds them on its first call), and safe to call from several threads, so a cube can map it
    over frames with ``dask.array.map_blocks``. Built from a ``channel``, it pickles only the channel
    and computes the (cached) full-frame PSF where it first runs.

    Parameters
    ----------
    psf : numpy.ndarray or cupy.ndarray, optional
        The PSF, 2-D, peak at pixel ``(ny // 2, nx // 2)`` as `~sunpy_timelag.aia.psf` returns it.
    channel : `~astropy.units.Quantity` or int, optional
        Instead of ``psf``: use ``sunpy_timelag.aia.psf(channel)`` (full frame, default options).
    iterations : int, optional
        Number of Richardson-Lucy iterations, at least 1.
    clip_negative : bool, optional
        Set negative pixels to 0 first (as aiapy). If False and there are negative pixels, warn.
    dtype : {numpy.float32, numpy.float64}, optional
        Working and output precision.
    workers : int, optional
        Threads for each CPU FFT, counted as `scipy.fft` ``workers`` (-1: all cores). Use 1 when
        many frames are deconvolved in parallel threads. Ignored for CuPy.

    Raises
    ------
    ValueError
        Neither or both of ``psf`` and ``channel``; a PSF that is not 2-D, has non-finite values or
        does not have a positive sum; ``iterations`` < 1; an unsupported ``dtype``.
    TypeError
        ``iterations`` not an integer.

    Warns
    -----
    AIApyUserWarning
        aiapy's (``aiapy.utils.AIApyUserWarning``), when called on an image with negative pixels and
        ``clip_negative=False``, as aiapy warns.
    UserWarning
        When called on an image with non-finite pixels.

    Examples
    --------
    >>> import numpy as np
    >>> from sunpy_timelag.aia.deconvolve import Deconvolver
    >>> kernel = np.zeros((64, 64)); kernel[31:34, 31:34] = 1 / 9
    >>> deconvolver = Deconvolver(kernel, iterations=5)
    >>> deconvolver(np.ones((64, 64))).dtype
    dtype('float32')
    """

    def __init__(self, psf=None, *, channel=None, iterations=25, clip_negative=True, dtype=np.float32,
                 workers=-1):
        if (psf is None) == (channel is None):
            raise ValueError("give exactly one of psf and channel")
        if psf is None:
            _mesh_parameters(channel)  # fails early on an unknown channel
        else:
            _check_psf(psf)
        try:
            self.iterations = operator.index(iterations)
        except TypeError:
            raise TypeError(f"iterations must be an integer, got {iterations!r}") from None
        if self.iterations < 1:
            raise ValueError(f"iterations must be at least 1, got {iterations}")
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype}")
        self.psf = psf
        self.channel = channel
        self.clip_negative = clip_negative
        self.workers = workers
        self._transforms = {}
        self._lock = threading.Lock()

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["_transforms"], state["_lock"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._transforms = {}
        self._lock = threading.Lock()

    def transfer_function(self, shape, xp=np):
        """
        The PSF transform :math:`\\hat P` and its conjugate for images of ``shape`` in module ``xp``.

        Computed on the first call for each ``(shape, xp)`` and kept.

        Parameters
        ----------
        shape : tuple of int
            Image shape; only the last two entries, ``(ny, nx)``, count.
        xp : module, optional
            ``numpy`` or ``cupy``.

        Returns
        -------
        otf, otf_conj : array
            Complex, ``(ny, nx // 2 + 1)``, of the working precision.
        """
        shape = tuple(shape[-2:])
        key = (shape, xp.__name__)
        with self._lock:
            if key not in self._transforms:
                kernel = channel_psf(self.channel) if self.psf is None else self.psf
                kernel = xp.asarray(kernel) if xp is not np else to_numpy(kernel)
                kernel = fit_psf(kernel, shape).astype(self.dtype)
                otf = _real_fft_pair(xp, self.workers)[0](xp.fft.ifftshift(kernel))
                self._transforms[key] = otf, otf.conj()
            return self._transforms[key]

    def __call__(self, image):
        """
        Deconvolve an image, or each image of a stack.

        Parameters
        ----------
        image : numpy.ndarray or cupy.ndarray
            ``(ny, nx)``, or ``(..., ny, nx)`` for a stack of frames (e.g. a ``(1, ny, nx)`` block of
            a Dask cube), deconvolved frame by frame.

        Returns
        -------
        numpy.ndarray or cupy.ndarray
            The deconvolved image(s), same array type and shape, of the working ``dtype``.
        """
        xp = array_module(image)
        image = xp.array(image, dtype=self.dtype, order="C")  # a copy: cleaned in place below
        if image.ndim < 2:
            raise ValueError(f"image must be 2-D (or a stack of 2-D frames), got shape {image.shape}")
        bad = ~xp.isfinite(image)
        any_bad = bool(bad.any())
        if any_bad:
            warnings.warn(f"{int(bad.sum())} non-finite pixels set to 0 for the deconvolution and to NaN "
                          "in the result", UserWarning, stacklevel=2)
            image[bad] = 0
        if self.clip_negative:
            xp.maximum(image, 0, out=image)
        elif bool((image < 0).any()):
            warnings.warn("Image contains negative intensity values. Consider setting clip_negative to True",
                          aiapy_user_warning(), stacklevel=2)
        otf, otf_conj = self.transfer_function(image.shape, xp)
        forward, inverse = _real_fft_pair(xp, self.workers)
        estimate = image.copy()
        spectrum = xp.empty(image.shape[:-1] + otf.shape[-1:], dtype=otf.dtype)
        buffer = xp.empty_like(image)
        # Where d = 0 the ratio is 0, as d / (u * P) is whenever the blurred estimate is not exactly 0;
        # where it rounds to 0 (float32, dark regions) 0/0 would spread NaN over the whole image.
        # Set by index: a cost in proportion to their number, no extra pass over the image.
        zeros = xp.flatnonzero(image == 0)
        with np.errstate(invalid="ignore"):  # the 0/0 overwritten just below
            for _ in range(self.iterations):
                spectrum = forward(estimate, out=spectrum)
                spectrum *= otf
                blurred = inverse(spectrum, out=buffer)
                ratio = xp.divide(image, blurred, out=blurred)
                xp.put(ratio, zeros, 0)
                spectrum = forward(ratio, out=spectrum)
                spectrum *= otf_conj
                estimate *= inverse(spectrum, out=ratio)
        if any_bad:
            estimate[bad] = np.nan
        return estimate


def _real_fft_pair(xp, workers):
    """
    ``forward(x, out=None)`` and ``inverse(spectrum, out)``: rfft2 and irfft2 over the last two axes.

    ``out`` is a buffer that the transform may fill and return (it may also return a new array);
    ``inverse`` may overwrite ``spectrum``.
    """
    if xp is np and ducc0 is not None:
        threads = os.cpu_count() + 1 + workers if workers < 0 else workers

        def forward(x, out=None):
            return ducc0.fft.r2c(x, axes=(-2, -1), out=out, nthreads=threads)

        def inverse(spectrum, out):
            return ducc0.fft.c2r(spectrum, axes=(-2, -1), lastsize=out.shape[-1], forward=False, inorm=2,
                                 out=out, nthreads=threads, allow_overwriting_input=True)
        return forward, inverse

    fft = fft_module(xp)
    options = {"workers": workers} if xp is np else {}

    def forward(x, out=None):
        return fft.rfft2(x, **options)

    def inverse(spectrum, out):
        # ifft along y in place, then irfft along x: irfft2 would first copy the spectrum (25 % slower).
        spectrum = fft.ifft(spectrum, axis=-2, overwrite_x=True, **options)
        return fft.irfft(spectrum, n=out.shape[-1], axis=-1, **options)
    return forward, inverse


def fit_psf(psf, shape):
    """
    Crop or zero-pad a PSF about its centre pixel to ``shape``.

    Along each axis the PSF's pixel ``n_psf // 2`` goes to the image's pixel ``n // 2`` (both are the
    PSF centre in the convention of `~sunpy_timelag.aia.psf` and of ``ifftshift``). A cropped PSF is
    rescaled to its original sum, so the deconvolution of a cutout conserves flux; the diffraction
    wings beyond the cutout are lost, so the far-scattered light (from outside the field too) is
    not removed: deconvolve full frames when that matters. A PSF of the image's shape is returned
    unchanged.

    Parameters
    ----------
    psf : numpy.ndarray or cupy.ndarray
        2-D.
    shape : tuple of int
        ``(ny, nx)``.

    Returns
    -------
    numpy.ndarray or cupy.ndarray
    """
    if psf.ndim != 2:
        raise ValueError(f"the PSF must be 2-D, got shape {psf.shape}")
    if psf.shape == tuple(shape):
        return psf
    xp = array_module(psf)
    fitted = xp.zeros(shape, dtype=psf.dtype)
    source, target = [], []
    for n_psf, n in zip(psf.shape, shape, strict=True):
        start_psf, start = max(n_psf // 2 - n // 2, 0), max(n // 2 - n_psf // 2, 0)
        length = min(n_psf - start_psf, n - start)
        source.append(slice(start_psf, start_psf + length))
        target.append(slice(start, start + length))
    fitted[tuple(target)] = psf[tuple(source)]
    if any(n_psf > n for n_psf, n in zip(psf.shape, shape, strict=True)):
        fitted *= psf.sum() / fitted.sum()
    return fitted


def _check_psf(psf):
    if psf.ndim != 2:
        raise ValueError(f"the PSF must be 2-D, got shape {psf.shape}")
    xp = array_module(psf)
    if not bool(xp.isfinite(psf).all()) or not float(psf.sum()) > 0:
        raise ValueError("the PSF must be finite with a positive sum")


def deconvolve(image, *, psf=None, channel=None, iterations=25, clip_negative=True, dtype=np.float32):
    """
    Deconvolve an AIA image with the instrument PSF (Richardson-Lucy, as `aiapy.psf.deconvolve`).

    See `Deconvolver` for the iteration, the precision, and how the PSF is fitted to images that are
    not full frames.

    Parameters
    ----------
    image : `~sunpy.map.GenericMap`, numpy.ndarray or cupy.ndarray
        A 2-D AIA level-1 image (deconvolve before registering to level 1.5).
    psf : numpy.ndarray or cupy.ndarray, optional
        The PSF, e.g. from `~sunpy_timelag.aia.psf`. Default: that of ``channel``.
    channel : `~astropy.units.Quantity` or int, optional
        Channel whose full-frame PSF to use when ``psf`` is not given; for a Map it defaults to the
        Map's wavelength. An array needs ``psf`` or ``channel``.
    iterations : int, optional
        Number of Richardson-Lucy iterations, at least 1.
    clip_negative : bool, optional
        Set negative pixels to 0 first; otherwise warn if there are any.
    dtype : {numpy.float32, numpy.float64}, optional
        Working and output precision.

    Returns
    -------
    `~sunpy.map.GenericMap`, numpy.ndarray or cupy.ndarray
        Same kind as ``image``: a Map keeps a copy of the metadata, plot settings and mask.

    Raises
    ------
    ValueError
        Neither ``psf`` nor ``channel`` (for an array, or a Map without wavelength), both, an image
        that is not 2-D, and the cases of `Deconvolver`.

    Warns
    -----
    AIApyUserWarning
        aiapy's, for negative pixels with ``clip_negative=False`` (see `Deconvolver`).
    UserWarning
        For non-finite pixels, set to 0 for the iteration and NaN in the result.
    """
    is_map = _is_map(image)
    if getattr(image, "ndim", 2) != 2 and not is_map:
        raise ValueError(f"image must be 2-D, got shape {image.shape}")
    if psf is None and channel is None and is_map:
        channel = image.wavelength
    if psf is None and channel is None:
        raise ValueError("give psf= or channel= (a Map defaults to its wavelength)")
    deconvolver = Deconvolver(psf, channel=channel, iterations=iterations, clip_negative=clip_negative,
                              dtype=dtype)
    if not is_map:
        return deconvolver(image)
    return image._new_instance(deconvolver(image.data), copy.deepcopy(image.meta),
                               plot_settings=copy.deepcopy(image.plot_settings), mask=image.mask)


def _is_map(obj):
    sunpy_map = sys.modules.get("sunpy.map")
    return sunpy_map is not None and isinstance(obj, sunpy_map.GenericMap)

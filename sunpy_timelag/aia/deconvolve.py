r"""
Richardson-Lucy deconvolution of AIA images with the channel PSF, as `aiapy.psf.deconvolve` does it.

The array code runs on NumPy or CuPy arrays (the array module of the image) and does not import
sunpy (aiapy's warning class is imported only to warn of negative pixels); a sunpy Map is
recognised only if ``sunpy.map`` is already imported.

On the CPU (with ``ducc0``) every two-dimensional FFT is done as its two passes, one along the rows
and one along the columns, each going through the image a block of rows or of columns at a time in
threads, and the element-wise steps of Richardson-Lucy are done in the passes, on each block while it
is in the processor cache: an iteration goes four times through memory, where whole-array transforms
and operations go thirteen times. On the GPU (CuPy), and on the CPU without ``ducc0``, the steps are
whole-array calls of ``cupyx.scipy.fft`` or `scipy.fft`.
"""
import copy
import operator
import os
import sys
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..backend import array_module, fft_module, to_numpy
from ._compat import aiapy_user_warning
from .psf import _jit, _mesh_parameters
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
    two ``irfft2`` of the image, done pass by pass with the element-wise steps in between (see the
    module's description).

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
        Threads for each image on the CPU, counted as `scipy.fft` ``workers`` (-1: all cores). Use 1
        when many frames are deconvolved in parallel threads. The result does not depend on it.
        Ignored for CuPy.

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
                with _steps_type(xp)(shape, self.dtype, xp, self._threads()) as steps:
                    self._transforms[key] = steps.psf_transform(xp.fft.ifftshift(kernel))
            return self._transforms[key]

    def _threads(self):
        return os.cpu_count() + 1 + self.workers if self.workers < 0 else self.workers

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
        any_bad = not bool(xp.isfinite(image).all())
        if any_bad:
            bad = ~xp.isfinite(image)
            warnings.warn(f"{int(bad.sum())} non-finite pixels set to 0 for the deconvolution and to NaN "
                          "in the result", UserWarning, stacklevel=2)
            image[bad] = 0
        if self.clip_negative:
            xp.maximum(image, 0, out=image)
        elif bool((image < 0).any()):
            warnings.warn("Image contains negative intensity values. Consider setting clip_negative to True",
                          aiapy_user_warning(), stacklevel=2)
        otf, otf_conj = self.transfer_function(image.shape, xp)
        estimate = image.copy()
        with _steps_type(xp)(image.shape[-2:], self.dtype, xp, self._threads()) as steps:
            for frame, frame_estimate in zip(image.reshape(-1, *image.shape[-2:]),
                                             estimate.reshape(-1, *image.shape[-2:]), strict=True):
                _richardson_lucy(frame, frame_estimate, otf, otf_conj, self.iterations, steps)
        if any_bad:
            estimate[bad] = np.nan
        return estimate


def _richardson_lucy(image, estimate, otf, otf_conj, iterations, steps):
    r"""
    Iterate :math:`u \leftarrow u\,[(d / (u \circledast P)) \star P]` on ``estimate`` in place.

    ``steps`` (`_ArraySteps` or `_BlockedSteps`) keeps the estimate between iterations as a
    ``spectrum``: its two-dimensional transform (`_ArraySteps`), or its transform along ``x`` only, the
    transform along ``y`` being done in `~_BlockedSteps.filter` (`_BlockedSteps`).

    Where :math:`d = 0` the ratio :math:`d / (u \circledast P)` is set to 0, its value whenever the
    blurred estimate is not exactly 0: where that rounds to 0 too (float32, dark regions), 0/0 would
    spread NaN over the whole image.
    """
    spectrum = steps.forward(estimate)
    for n in range(iterations):
        spectrum = steps.filter(spectrum, otf)  # u * P
        spectrum = steps.ratio(spectrum, image)  # d / (u * P)
        spectrum = steps.filter(spectrum, otf_conj)
        spectrum = steps.update(spectrum, estimate, transform=n < iterations - 1)


def _steps_type(xp):
    """`_BlockedSteps` for NumPy images when ``ducc0`` is installed, else `_ArraySteps`."""
    return _BlockedSteps if xp is np and ducc0 is not None else _ArraySteps


class _ArraySteps:
    """
    The steps of `_richardson_lucy` as whole-array calls of the FFT module of ``xp`` (`scipy.fft` or
    ``cupyx.scipy.fft``): ``spectrum`` is the ``rfft2`` of the estimate. A context manager, as
    `_BlockedSteps`.
    """

    def __init__(self, shape, dtype, xp, threads):
        self.xp = xp
        self.fft = fft_module(xp)
        self.width = shape[-1]
        self.options = {"workers": threads} if xp is np else {}

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return None

    def psf_transform(self, kernel):
        """The real-to-complex FFT of ``kernel`` (``rfft2``) and its conjugate."""
        otf = self.forward(kernel)
        return otf, otf.conj()

    def forward(self, real):
        return self.fft.rfft2(real, **self.options)

    def _inverse(self, spectrum):
        # ifft along y in place, then irfft along x: irfft2 would first copy the spectrum (25 % slower).
        spectrum = self.fft.ifft(spectrum, axis=-2, overwrite_x=True, **self.options)
        return self.fft.irfft(spectrum, n=self.width, axis=-1, **self.options)

    def filter(self, spectrum, otf):
        spectrum *= otf
        return spectrum

    def ratio(self, spectrum, image):
        blurred = self._inverse(spectrum)
        with np.errstate(invalid="ignore"):  # 0/0, set to 0 just below
            ratio = self.xp.divide(image, blurred, out=blurred)
        ratio[image == 0] = 0
        return self.forward(ratio)

    def update(self, spectrum, estimate, transform):
        estimate *= self._inverse(spectrum)
        return self.forward(estimate) if transform else None


class _BlockedSteps:
    """
    The steps of `_richardson_lucy` on the CPU: ``ducc0`` transforms and numba kernels on blocks of
    rows or of columns small enough to stay in the processor cache, the blocks shared among threads.

    ``spectrum`` is the transform along ``x`` (the rows) of the estimate, in one array whose rows are
    padded (`_padded`): rows a power of two bytes apart fall on the same few cache sets, which makes
    some transforms three times slower. `filter` copies each block of columns into a buffer where
    they are rows (transposed), transforms them, multiplies them by the PSF transform (kept
    transposed, `psf_transform`), transforms them back and copies them back. `ratio` and `update`
    take each block of rows through the inverse transform, the element-wise step and the transform.
    Transforms are unnormalised; the factor :math:`1 / (n_y n_x)` is applied in the element-wise steps.
    """

    ROW_BYTES = 1 << 19  # bytes of image rows in one block of rows
    COLUMN_BYTES = 1 << 22  # bytes of spectrum columns in one block of columns (measured best)

    def __init__(self, shape, dtype, xp, threads):
        self.height, self.width = shape
        self.dtype = np.dtype(dtype)
        self.complex_dtype = np.result_type(self.dtype, np.complex64)
        self.scale = self.dtype.type(1 / (self.height * self.width))
        self.row_block = max(1, self.ROW_BYTES // (self.width * self.dtype.itemsize))
        self.column_block = max(1, self.COLUMN_BYTES // (self.height * self.complex_dtype.itemsize))
        self.threads = max(1, threads)
        self.padded_spectrum = _padded((self.height, self.width // 2 + 1), self.complex_dtype)
        self.spectrum = self.padded_spectrum[:, :self.width // 2 + 1]
        self.pool = None

    def __enter__(self):
        if self.threads > 1:
            self.pool = ThreadPoolExecutor(self.threads)
        return self

    def __exit__(self, *exc_info):
        if self.pool is not None:
            self.pool.shutdown()

    def psf_transform(self, kernel):
        """
        The real-to-complex FFT of ``kernel`` and its conjugate, each the transposed view of a
        C-contiguous array (whose rows are the columns of the transform), as `filter` takes them.
        """
        self.forward(kernel)
        otf, otf_conj = (np.empty((self.width // 2 + 1, self.height), self.complex_dtype) for _ in range(2))

        def step(start, stop, buffer):
            _gather_columns(self.padded_spectrum, start, buffer[:stop - start])
            ducc0.fft.c2c(buffer[:stop - start, :self.height], axes=(1,), out=otf[start:stop], nthreads=1)
            np.conjugate(otf[start:stop], out=otf_conj[start:stop])

        self._in_threads(step, otf.shape[0], self.column_block, (self.column_block, self.height),
                         self.complex_dtype)
        return otf.T, otf_conj.T

    def _in_threads(self, work, length, block, buffer_shape, buffer_dtype):
        """
        ``work(start, stop, buffer)`` over blocks of ``block`` of ``range(length)``, in threads, each
        with its ``buffer``: a `_padded` array of ``buffer_shape``.
        """
        starts = iter(range(0, length, block))
        lock = threading.Lock()

        def run():  # takes the next block until none is left: a thread slowed down takes fewer
            buffer = _padded(buffer_shape, buffer_dtype)
            while True:
                with lock:
                    start = next(starts, None)
                if start is None:
                    return
                work(start, min(start + block, length), buffer)

        if self.pool is None:
            run()
        else:
            for future in [self.pool.submit(run) for _ in range(self.threads)]:
                future.result()

    def _over_rows(self, step):
        """``step(start, stop, spectrum rows, padded real rows)`` over blocks of rows; the spectrum."""
        self._in_threads(lambda start, stop, buffer: step(start, stop, self.spectrum[start:stop],
                                                          buffer[:stop - start]),
                         self.height, self.row_block, (self.row_block, self.width), self.dtype)
        return self.spectrum

    def _inverse_rows(self, spectrum, buffer):
        return ducc0.fft.c2r(spectrum, axes=(1,), lastsize=self.width, forward=False,
                             out=buffer[:, :self.width], nthreads=1, allow_overwriting_input=True)

    def forward(self, real):
        def step(start, stop, spectrum, buffer):
            ducc0.fft.r2c(real[start:stop], axes=(1,), out=spectrum, nthreads=1)
        return self._over_rows(step)

    def ratio(self, spectrum, image):
        def step(start, stop, spectrum, buffer):
            real = self._inverse_rows(spectrum, buffer)
            _ratio(image[start:stop], buffer, self.scale)
            ducc0.fft.r2c(real, axes=(1,), out=spectrum, nthreads=1)
        return self._over_rows(step)

    def update(self, spectrum, estimate, transform):
        def step(start, stop, spectrum, buffer):
            self._inverse_rows(spectrum, buffer)
            rows = estimate[start:stop]
            _multiply(rows, buffer, self.scale)
            if transform:
                ducc0.fft.r2c(rows, axes=(1,), out=spectrum, nthreads=1)
        return self._over_rows(step)

    def filter(self, spectrum, otf):
        otf_rows = otf.T  # C-contiguous when made by `psf_transform`

        def step(start, stop, buffer):
            padded_block = buffer[:stop - start]
            block = padded_block[:, :self.height]
            _gather_columns(self.padded_spectrum, start, padded_block)
            ducc0.fft.c2c(block, axes=(1,), out=block, nthreads=1)
            block *= otf_rows[start:stop]
            ducc0.fft.c2c(block, axes=(1,), out=block, forward=False, nthreads=1)
            _scatter_columns(padded_block, self.padded_spectrum, start)

        self._in_threads(step, spectrum.shape[1], self.column_block, (self.column_block, self.height),
                         self.complex_dtype)
        return spectrum


def _padded(shape, dtype):
    """
    An empty C-contiguous array of ``shape[0]`` rows of at least ``shape[1]`` items, padded to a
    multiple of 64 bytes but not of 1 KiB. The numba kernels take such arrays whole (contiguous
    arrays, whose loops numba vectorises) and the transforms take their first ``shape[1]`` columns.
    """
    itemsize = np.dtype(dtype).itemsize
    width = -(-shape[1] * itemsize // 64) * 64
    if width % 1024 == 0:
        width += 64
    return np.empty((shape[0], width // itemsize), dtype)


@_jit
def _gather_columns(spectrum, start, block):
    """``block[j, i] = spectrum[i, start + j]`` for every row ``i`` of ``spectrum``, in tiles of 16 rows."""
    columns, rows = block.shape[0], spectrum.shape[0]
    for first in range(0, rows, 16):
        for j in range(columns):
            for i in range(first, min(first + 16, rows)):
                block[j, i] = spectrum[i, start + j]


@_jit
def _scatter_columns(block, spectrum, start):
    """``spectrum[i, start + j] = block[j, i]`` for every row ``i`` of ``spectrum``, in tiles of 16 rows."""
    columns, rows = block.shape[0], spectrum.shape[0]
    for first in range(0, rows, 16):
        for i in range(first, min(first + 16, rows)):
            for j in range(columns):
                spectrum[i, start + j] = block[j, i]


@_jit(error_model="numpy")
def _ratio(image, blurred, scale):
    """``blurred = image / (blurred * scale)`` in place (over ``image``'s extent), 0 where ``image`` is 0."""
    for i in range(image.shape[0]):
        for j in range(image.shape[1]):
            ratio = image[i, j] / (blurred[i, j] * scale)
            blurred[i, j] = ratio if image[i, j] != 0 else 0


@_jit
def _multiply(estimate, correction, scale):
    """``estimate *= correction * scale`` in place (over ``estimate``'s extent)."""
    for i in range(estimate.shape[0]):
        for j in range(estimate.shape[1]):
            estimate[i, j] *= correction[i, j] * scale


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

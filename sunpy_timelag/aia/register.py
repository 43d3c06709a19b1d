r"""
Registration of AIA level-1 images to level 1.5, as `aiapy.calibrate.register` does it, fast.

Level 1.5 puts solar north up, 0.6 arcsec per pixel and the Sun's centre (the reference pixel) at the
centre of the frame. `aiapy.calibrate.register` does it with `sunpy.map.GenericMap.rotate` (pad the
image with ``missing``, rotate, scale and recentre the padded image, crop the padding) and a crop to
the input's size about the centre. Written as one map, with :math:`R` the rotation matrix (``PCi_j``),
:math:`k` the scale factor (``CDELT`` / 0.6"), :math:`c` the reference pixel of the padded input and
:math:`m` the centre of the padded output, the output pixel :math:`p = (x, y)` samples the input at

.. math::

    q = A\,p + s, \qquad A = \frac{R^{-1}}{k}, \qquad s = c - A\,m,

here evaluated only on the pixels that aiapy keeps. The value there is that of `scipy.ndimage`'s
interpolating B-spline of order :math:`n` (mode ``'constant'``):

.. math::

    f(q) = \sum_{i, j} a_{ij}\, \beta^n(q_x - i)\, \beta^n(q_y - j),

a sum over the :math:`(n + 1)^2` nearest coefficients (mirrored at the edges), and ``missing``
outside :math:`[0, N - 1]`. The coefficients :math:`a` come from the data by the recursive filter

.. math::

    H(Z) = \prod_k \frac{(1 - z_k)(1 - z_k^{-1})}{(1 - z_k Z^{-1})(1 - z_k Z)}

along each axis (:math:`z_k` the spline's poles, e.g. :math:`\sqrt 3 - 2` for :math:`n = 3`; mirror
boundaries), a causal and an anti-causal first-order recursion per pole. NaN pixels and clipping to
the input's range are handled as `sunpy.image.transform.affine_transform` handles them.

On the CPU, with `numba` installed, the prefilter and the interpolation are compiled kernels run on
blocks of rows (and columns) in threads; they reproduce `scipy.ndimage.affine_transform` to about
:math:`10^{-15}` relative. Without numba, and for CuPy images on the GPU, `scipy.ndimage` and
`cupyx.scipy.ndimage` do the same through `sunpy_timelag.backend.ndimage_module`.

Importing this module (or `sunpy_timelag.aia`) registers the CPU kernel with sunpy as the rotation
method ``"sunpy_timelag"``: ``GenericMap.rotate(method="sunpy_timelag")`` and
``aiapy.calibrate.register(smap, method="sunpy_timelag")`` then use it.
"""
import functools
import itertools
import math
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..backend import array_module, ndimage_module
from ._compat import aiapy_user_warning

try:
    import numba
except ImportError:  # the scipy.ndimage fallback gives the same numbers, slower
    numba = None

__all__ = ["register", "Registration", "affine_spline", "ROTATION_METHOD"]

#: Name of this package's rotation function in `sunpy.image.transform` (``GenericMap.rotate(method=...)``).
ROTATION_METHOD = "sunpy_timelag"
#: Level-1.5 plate scale, arcsec per pixel.
TARGET_SCALE = 0.6
#: Side of the square around an input NaN that sunpy marks NaN in the output, per spline order.
NAN_NEIGHBOURHOOD = (1, 1, 5, 5, 7, 7)
_SIXTH = 1.0 / 6.0  # multiplying is faster than dividing (the weights change by an ulp at most)
#: Poles of the B-spline prefilter of each order (Unser et al. 1991).
POLES = {
    2: (math.sqrt(8.0) - 3.0,),
    3: (math.sqrt(3.0) - 2.0,),
    4: (math.sqrt(664.0 - math.sqrt(438976.0)) + math.sqrt(304.0) - 19.0,
        math.sqrt(664.0 + math.sqrt(438976.0)) - math.sqrt(304.0) - 19.0),
    5: (math.sqrt(67.5 - math.sqrt(4436.25)) + math.sqrt(26.25) - 6.5,
        math.sqrt(67.5 + math.sqrt(4436.25)) - math.sqrt(26.25) - 6.5),
}


# ---- level 1.5 of a map -----------------------------------------------------------------------

def register(smap, *, missing=None, order=3, method=None):
    """
    Register an AIA level-1 map to level 1.5: the result of `aiapy.calibrate.register`, faster.

    Rotates by the roll angle, scales to 0.6 arcsec per pixel (a binned full-disk map, e.g. 1024 x
    1024, to the multiple of 0.6" nearest its scale, as aiapy does), puts the Sun's centre at the
    frame's centre and crops to the input's size; the header gets aiapy's updates (``CRPIX``,
    ``CRVAL``, ``CDELT``, ``PCi_j``, ``NAXIS``, ``R_SUN``, ``LVL_NUM = 1.5``, ``BITPIX``; ``CROTA``
    and ``CDi_j`` removed). See `Registration` for the transform and the numbers.

    Parameters
    ----------
    smap : `~sunpy.map.sources.AIAMap` or `~sunpy.map.sources.HMIMap`
        A full-disk level-1 map (Dask data is computed; for CuPy arrays, call a `Registration`, or
        register a `~sunpy_timelag.TimelagCube`). NaN pixels are NaN in the result, grown by the
        interpolation's footprint, as sunpy does it.
    missing : float, optional
        Value of the pixels that fall outside the input; default the map's minimum (as aiapy).
    order : int, optional
        Order of the spline interpolation, 0 to 5.
    method : str, optional
        `None` (default): this package's kernels (numba threads on the CPU; `scipy.ndimage` without
        numba). A sunpy rotation-method name (``"scipy"``, ``"opencv"``, ``"sunpy_timelag"``,
        ...): `aiapy.calibrate.register` itself with that method.

    Returns
    -------
    `~sunpy.map.GenericMap`
        The level-1.5 map, of the input's Map class and dtype.

    Raises
    ------
    TypeError
        If ``smap`` is not an AIA (or HMI) map.
    ValueError
        If it is not a full-disk image (a cut-out: register the full frame, then crop), lacks the
        pixel scale (``CDELT``) or the roll (``CROTA2``, ``PCi_j`` or ``CDi_j``), or has integer
        data with a NaN ``missing`` that would be needed.

    Warns
    -----
    AIApyUserWarning
        aiapy's (``aiapy.utils.AIApyUserWarning``) if the map's processing level is not 1, as aiapy warns.
    """
    check_level1_map(smap)
    if method is not None:
        from aiapy.calibrate import register as aiapy_register

        return aiapy_register(smap, missing=missing, order=order, method=method)
    registration = Registration.from_map(smap)
    data = registration(smap.data, missing=missing, order=order)
    return smap._new_instance(data, registration.meta, plot_settings=smap.plot_settings)


def check_level1_map(smap):
    """
    Check that ``smap`` can be registered as aiapy registers it.

    Parameters
    ----------
    smap : `~sunpy.map.GenericMap`

    Raises
    ------
    TypeError, ValueError
        See `register`.
    """
    from sunpy.map import contains_full_disk
    from sunpy.map.sources import AIAMap, HMIMap

    if not isinstance(smap, AIAMap | HMIMap):
        raise TypeError(f"register needs an AIA (or HMI) map, as aiapy does; got a {type(smap).__name__}")
    keys = set(smap.meta)
    if not ({"cdelt1", "cdelt2"} <= keys or "cd1_1" in keys):
        raise ValueError("the map has no pixel scale (CDELT1, CDELT2 or CDi_j): cannot scale it to 0.6 arcsec")
    if not keys & {"crota1", "crota2", "pc1_1", "pc1_2", "pc2_1", "pc2_2", "cd1_1", "cd1_2", "cd2_1", "cd2_2"}:
        raise ValueError("the map has no roll angle (CROTA2, PCi_j or CDi_j): registering it would assume "
                         "zero roll; set CROTA2 (e.g. with aiapy.calibrate.update_pointing) first")
    if not contains_full_disk(smap):
        raise ValueError("the map is not a full-disk image (a cut-out): register the full-disk frame, then crop")
    if smap.processing_level is None or smap.processing_level > 1:
        warnings.warn("Image registration should only be applied to level 1 data", aiapy_user_warning(),
                      stacklevel=3)


@dataclass(frozen=True, eq=False)
class Registration:
    r"""
    The level-1.5 transform of one frame, from its header alone: pad, affine map, window, header.

    The registered image is ``out[y, x] = f(A (x + o_x, y + o_y) + s)``, with :math:`f` the spline
    of the input padded by ``pad`` pixels of ``missing`` (sunpy's padding, which the prefilter
    sees), :math:`A` and :math:`s` as in the module's description and :math:`o` the offset of the
    output window in the padded, rotated image of `sunpy.map.GenericMap.rotate`. Build it with
    `from_map`; call it on the frame's data (NumPy or CuPy).

    Attributes
    ----------
    input_shape : tuple of int
        ``(ny, nx)`` of the level-1 frame.
    pad : tuple of int
        Pixels of ``missing`` added above and below, left and right.
    matrix : numpy.ndarray
        :math:`A`, ``(2, 2)``, acting on ``(x, y)``.
    shift : numpy.ndarray
        :math:`s`, ``(x, y)``.
    origin : numpy.ndarray
        :math:`o`, ``(x, y)``.
    shape : tuple of int
        ``(ny, nx)`` of the level-1.5 frame.
    meta : `~sunpy.util.metadata.MetaDict`
        Its header.
    """

    input_shape: tuple
    pad: tuple
    matrix: np.ndarray
    shift: np.ndarray
    origin: np.ndarray
    shape: tuple
    meta: dict

    @classmethod
    def from_map(cls, smap, *, grid=None):
        """
        The registration of a map, as `aiapy.calibrate.register` and `sunpy.map.GenericMap.rotate` do it.

        Only the header and the data's shape are used (a map of lazy zeros will do).

        Parameters
        ----------
        smap : `~sunpy.map.GenericMap`
        grid : `Registration`, optional
            Put the result on the output pixels of this registration (its shape and reference
            pixel) rather than on aiapy's crop of this frame: frames of a series, whose pointing
            differs slightly, then share one level-1.5 grid. For frames of equal shape and
            reference value the two coincide whenever aiapy's crops have the same size.

        Returns
        -------
        `Registration`
        """
        import astropy.units as u
        from astropy.coordinates import UnitSphericalRepresentation

        ny, nx = smap.data.shape
        scale = smap.scale[0].to_value(u.arcsec / u.pix)
        if round(scale / TARGET_SCALE) != 1 and (ny, nx) != (4096, 4096):  # binned: nearest multiple of 0.6"
            factor = scale / (np.round(scale / TARGET_SCALE) * TARGET_SCALE)
        else:
            factor = scale / TARGET_SCALE
        rotation = smap.rotation_matrix
        inverse = np.linalg.inv(rotation)
        # GenericMap.rotate: pad to hold the rotated, scaled image; recentre on the reference pixel.
        corners = np.vstack([rotation @ c for c in itertools.product([-0.5, nx - 0.5], [-0.5, ny - 0.5])]) * factor
        extra = np.asarray(np.ceil((np.ptp(corners, axis=0) - [nx, ny]) / 2), dtype=int)
        pad, unpad = np.maximum(extra, 0), np.maximum(-extra, 0)
        padded = np.array([nx, ny]) + 2 * pad
        centre = (padded - 1) / 2.0
        matrix = inverse / factor
        shift = u.Quantity(smap.reference_pixel).to_value(u.pix) + pad - matrix @ centre
        if grid is None:
            origin, shape, crpix = _aiapy_window(centre + 1 - unpad, padded - 2 * unpad, ny)
            origin = origin + unpad
        else:
            crpix = np.array([grid.meta["crpix1"], grid.meta["crpix2"]])
            origin, shape = centre - (crpix - 1), grid.shape
        meta = smap.meta.copy()
        reference = smap.reference_coordinate.frame.represent_as(UnitSphericalRepresentation)
        pc = rotation @ inverse
        meta.update({
            "crval1": reference.lon.to_value(smap.spatial_units[0]),
            "crval2": reference.lat.to_value(smap.spatial_units[1]),
            "crpix1": crpix[0], "crpix2": crpix[1], "naxis1": shape[1], "naxis2": shape[0],
            "pc1_1": pc[0, 0], "pc1_2": pc[0, 1], "pc2_1": pc[1, 0], "pc2_2": pc[1, 1],
        })
        if factor != 1.0:
            meta["cdelt1"], meta["cdelt2"] = (smap.scale[0].value / factor, smap.scale[1].value / factor)
        for key in ("crota1", "crota2", "cd1_1", "cd1_2", "cd2_1", "cd2_2"):
            meta.pop(key, None)
        meta["r_sun"] = smap.rsun_obs.to_value(smap.spatial_units[0]) / meta["cdelt1"]
        meta["lvl_num"] = 1.5
        meta["bitpix"] = -64
        return cls((ny, nx), (int(pad[1]), int(pad[0])), matrix, shift, np.asarray(origin, float), tuple(shape),
                   meta)

    def __call__(self, image, *, missing=None, order=3, workers=None):
        """
        Register the frame's data.

        Parameters
        ----------
        image : numpy.ndarray or cupy.ndarray
            ``input_shape``.
        missing : float, optional
            Value outside the input; default ``nanmin(image)``.
        order : int, optional
            Spline order, 0 to 5.
        workers : int, optional
            CPU threads (default: all cores).

        Returns
        -------
        numpy.ndarray or cupy.ndarray
            ``shape``, of the input's dtype.
        """
        xp = array_module(image)
        image = xp.asarray(image)
        if image.shape != self.input_shape:
            raise ValueError(f"image of shape {image.shape}; this registration is for {self.input_shape}")
        low, high = float(xp.min(image)), float(xp.max(image))
        has_nan = math.isnan(low)  # min and max propagate NaN: one pass each in the usual case
        if has_nan:
            low, high = float(xp.nanmin(image)), float(xp.nanmax(image))
        missing = low if missing is None else float(missing)
        if image.dtype.kind in "iub" and missing % 1 != 0:
            raise ValueError(f"integer data cannot take missing={missing}: give an integer value")
        if any(self.pad):
            image = xp.pad(image, [(self.pad[0],) * 2, (self.pad[1],) * 2], constant_values=missing)
            low, high = np.nanmin([low, missing]), np.nanmax([high, missing])
        if has_nan:  # as sunpy: interpolate with NaN as the median, then mark the NaNs' neighbourhood
            nan = xp.isnan(image)
            image = xp.where(nan, xp.nanmedian(image), image)
        out = affine_spline(image, self.matrix, self.shift, origin=self.origin, shape=self.shape, order=order,
                            cval=missing, workers=workers)
        if has_nan:
            grown = ndimage_module(xp).maximum_filter(nan.astype(np.uint8), size=NAN_NEIGHBOURHOOD[order],
                                                      mode="constant")
            touched = affine_spline(grown.astype(np.float32), self.matrix, self.shift, origin=self.origin,
                                    shape=self.shape, order=min(order, 1), cval=0.0, workers=workers)
            out[touched > 0] = np.nan
            if bool(xp.isnan(out).all()):
                return out
        return _clip(out, low, high, missing, xp)


def _aiapy_window(crpix, shape, size):
    """aiapy's crop of ``size`` pixels about ``floor(CRPIX1)`` of the rotated image, as `submap` takes it."""
    centre = np.floor(crpix[0])
    first, last = centre - size / 2, centre + size / 2 - 1
    start = np.clip(np.floor(first + 0.5), 0, shape)
    stop = np.clip(np.ceil(last - 0.5) + 1, 0, shape)
    return start, (int(stop[1] - start[1]), int(stop[0] - start[0])), crpix - start


def _clip(out, low, high, missing, xp):
    """
    Clip to the input's range ``[low, high]``, widened towards ``missing`` as far as the output
    reaches, as `sunpy.image.transform.affine_transform` does (only a ``missing`` outside the range
    needs the output's extremes).
    """
    if missing < low:
        low = min(max(missing, float(xp.nanmin(out))), low)
    if missing > high:
        high = max(min(missing, float(xp.nanmax(out))), high)
    return xp.clip(out, out.dtype.type(low), out.dtype.type(high), out=out)


# ---- the spline transform ---------------------------------------------------------------------

def affine_spline(image, matrix, shift, *, origin=(0.0, 0.0), shape=None, order=3, cval=0.0, workers=None):
    r"""
    Spline interpolation of an image at affinely mapped pixels: `scipy.ndimage.affine_transform`, faster.

    ``out[y, x]`` is the order-``order`` spline of ``image`` at :math:`A (x + o_x, y + o_y) + s`, in
    sunpy's ``(x, y)`` convention (`sunpy.image.transform.affine_transform` calls scipy with the
    transposed image), with mode ``'constant'`` (``cval`` outside the input, mirrored coefficients at
    its edges). Integer images are interpolated in float64 and rounded half away from zero, as scipy
    does.

    Parameters
    ----------
    image : numpy.ndarray or cupy.ndarray
        2-D.
    matrix : array-like
        :math:`A`, ``(2, 2)``.
    shift : array-like
        :math:`s`, ``(2,)``.
    origin : array-like, optional
        :math:`o`: the output's first pixel, ``(x, y)``.
    shape : tuple of int, optional
        Output ``(ny, nx)``; default the input's.
    order : int, optional
        0 to 5.
    cval : float, optional
    workers : int, optional
        CPU threads (default: all cores). Ignored without numba and on the GPU.

    Returns
    -------
    numpy.ndarray or cupy.ndarray
        Of the input's dtype (in native byte order).
    """
    xp = array_module(image)
    if image.ndim != 2:
        raise ValueError(f"the image must be 2-D, got shape {image.shape}")
    if order not in range(6):
        raise ValueError(f"the spline order must be 0 to 5, got {order}")
    shape = tuple(image.shape if shape is None else shape)
    matrix, shift, origin = (np.asarray(v, dtype=np.float64) for v in (matrix, shift, origin))
    dtype = image.dtype.newbyteorder("=")  # numba and scipy's output: native byte order
    work = image.astype(dtype if dtype.kind == "f" else np.float64, copy=False)
    if xp is np and numba is not None:
        out = _affine_numba(np.ascontiguousarray(work), matrix, shift, origin, shape, order, cval, workers)
    else:  # (row, column) order for ndimage: reverse both axes of the (x, y) map
        offset = (shift + matrix @ origin)[::-1]
        out = ndimage_module(xp).affine_transform(work, xp.asarray(matrix[::-1, ::-1].copy()), offset=tuple(offset),
                                                  output_shape=shape, order=order, mode="constant", cval=cval)
    if dtype.kind == "f":
        return out
    rounded = xp.trunc(out + xp.copysign(0.5, out))
    return (xp.maximum(rounded, 0) if dtype.kind in "ub" else rounded).astype(dtype)


def _affine_numba(image, matrix, shift, origin, shape, order, cval, workers):
    """`affine_spline` on the CPU: prefilter by rows then by columns, interpolate by rows, in threads."""
    workers = os.cpu_count() if workers is None else max(int(workers), 1)
    if order > 1:
        poles = np.array(POLES[order])
        coefficients = np.empty(image.shape)
        _in_blocks(image.shape[0], workers, lambda a, b: _filter_rows(image, coefficients, a, b, poles))
        _in_blocks(image.shape[1], workers, lambda a, b: _filter_columns(coefficients, a, b, poles))
    else:
        coefficients = image
    out = np.empty(shape, dtype=image.dtype)
    _in_blocks(shape[0], workers, lambda a, b: _interpolate(coefficients, matrix, shift, origin, a, order,
                                                            float(cval), out[a:b]))
    return out


@functools.cache
def _thread_pool(pid):
    """This process's pool of CPU threads (keyed by process id: a forked child makes its own)."""
    return ThreadPoolExecutor(os.cpu_count(), thread_name_prefix="sunpy_timelag-register")


def _in_blocks(n, blocks, function):
    """Call ``function(start, stop)`` on ``blocks`` contiguous ranges covering ``range(n)``, in threads."""
    edges = np.linspace(0, n, min(blocks, n) + 1).astype(int)
    if len(edges) <= 2:
        function(0, n)
        return
    for future in [_thread_pool(os.getpid()).submit(function, a, b) for a, b in itertools.pairwise(edges)]:
        future.result()


# ---- numba kernels ----------------------------------------------------------------------------

def _jit(function):
    """
    Compile ``function`` with numba on its first call, cached on disk (numba's ``cache=True``) so that
    later processes load it (about 0.2 s) rather than compile it again (about 2 s).

    numba caches in ``NUMBA_CACHE_DIR`` if set, else in the package's ``__pycache__``, else in the
    user's cache directory (``~/.cache/numba``); where none of these is writable, each process compiles.
    """
    if numba is None:
        return function
    try:
        return numba.njit(nogil=True, cache=True)(function)
    except RuntimeError:  # "cannot cache function ...: no locator available": no writable cache location
        return numba.njit(nogil=True)(function)


@_jit
def _filter_lines(c, poles):
    """
    The B-spline prefilter along axis 0 of ``c``, in place, all columns at once (scipy's recursion and
    mirror initialisation, vectorised across the columns).
    """
    n, m = c.shape
    if n < 2:
        return
    gain = 1.0
    for z in poles:
        gain *= (1.0 - z) * (1.0 - 1.0 / z)
    for i in range(n):
        for k in range(m):
            c[i, k] *= gain
    first = np.empty(m)
    for z in poles:
        z_n = z ** (n - 1)
        for k in range(m):
            first[k] = c[0, k] + z_n * c[n - 1, k]
        z_i = z
        for i in range(1, n - 1):
            if z_i == 0.0:  # the remaining terms are exactly zero
                break
            for k in range(m):
                first[k] += z_i * (c[i, k] + z_n * c[n - 1 - i, k])
            z_i *= z
        for k in range(m):
            c[0, k] = first[k] / (1 - z_n * z_n)
        for i in range(1, n):
            for k in range(m):
                c[i, k] += z * c[i - 1, k]
        for k in range(m):
            c[n - 1, k] = (z * c[n - 2, k] + c[n - 1, k]) * z / (z * z - 1)
        for i in range(n - 2, -1, -1):
            for k in range(m):
                c[i, k] = z * (c[i + 1, k] - c[i, k])


@_jit
def _filter_rows(image, coefficients, start, stop, poles):
    """Rows ``start:stop`` of ``image`` into ``coefficients``, filtered along the rows, a few rows at a time."""
    group = 8
    for first in range(start, stop, group):
        last = min(first + group, stop)
        # copied by a loop: numba takes 2.5 s to compile the slice assignment, 0.1 s the loop
        for i in range(first, last):
            for k in range(image.shape[1]):
                coefficients[i, k] = image[i, k]
        _filter_lines(coefficients[first:last].T, poles)


@_jit
def _filter_columns(coefficients, start, stop, poles):
    _filter_lines(coefficients[:, start:stop], poles)


@_jit
def _weights(x, order, w):
    """The B-spline weights of the ``order + 1`` coefficients nearest ``x`` (scipy's polynomials)."""
    x -= math.floor(x if order & 1 else x + 0.5)
    z = 1.0 - x
    if order == 1:
        w[0] = z
    elif order == 2:
        w[1] = 0.75 - x * x
        w[0] = 0.5 * (0.5 - x) * (0.5 - x)
    elif order == 3:
        w[1] = (x * x * (x - 2.0) * 3.0 + 4.0) * _SIXTH
        w[2] = (z * z * (z - 2.0) * 3.0 + 4.0) * _SIXTH
        w[0] = z * z * z * _SIXTH
    elif order == 4:
        t = x * x
        w[2] = t * (t * 0.25 - 0.625) + 115.0 / 192.0
        y = 1.0 + x
        w[1] = y * (y * (y * (5.0 - y) * _SIXTH - 1.25) + 5.0 / 24.0) + 55.0 / 96.0
        w[3] = z * (z * (z * (5.0 - z) * _SIXTH - 1.25) + 5.0 / 24.0) + 55.0 / 96.0
        t = (0.5 - x) * (0.5 - x)
        w[0] = t * t * (1.0 / 24.0)
    elif order == 5:
        t = x * x
        w[2] = t * (t * (0.25 - x * (1.0 / 12.0)) - 0.5) + 0.55
        t = z * z
        w[3] = t * (t * (0.25 - z * (1.0 / 12.0)) - 0.5) + 0.55
        y = x + 1.0
        w[1] = y * (y * (y * (y * (y * (1.0 / 24.0) - 0.375) + 1.25) - 1.75) + 0.625) + 0.425
        y = z + 1.0
        w[4] = y * (y * (y * (y * (y * (1.0 / 24.0) - 0.375) + 1.25) - 1.75) + 0.625) + 0.425
        t = z * z
        w[0] = z * t * t * (1.0 / 120.0)
    w[order] = 1.0
    for i in range(order):
        w[order] -= w[i]


@_jit
def _mirror(i, n):
    """Index ``i`` mirrored into ``[0, n)`` (whole-sample symmetric), as scipy maps spline taps."""
    if n == 1:
        return 0
    period = 2 * n - 2
    i = abs(i) % period
    return period - i if i >= n else i


@_jit
def _interpolate(coefficients, matrix, shift, origin, row0, order, cval, out):
    """Rows ``row0...`` of the transform into ``out``, with ``order`` a compile-time constant."""
    _interpolate_order(coefficients, matrix, shift, origin, row0, numba.literally(order), cval, out)


@_jit
def _interpolate_order(coefficients, matrix, shift, origin, row0, order, cval, out):
    ny, nx = coefficients.shape
    taps, half = order + 1, order // 2
    wx, wy = np.ones(taps), np.ones(taps)
    for i in range(out.shape[0]):
        yo = i + row0 + origin[1]
        for j in range(out.shape[1]):
            xo = j + origin[0]
            x = shift[0] + xo * matrix[0, 0] + yo * matrix[0, 1]
            y = shift[1] + xo * matrix[1, 0] + yo * matrix[1, 1]
            if not (0.0 <= x <= nx - 1 and 0.0 <= y <= ny - 1):  # also NaN
                out[i, j] = cval
                continue
            sx = int(math.floor(x if order & 1 else x + 0.5)) - half
            sy = int(math.floor(y if order & 1 else y + 0.5)) - half
            if order > 0:
                _weights(x, order, wx)
                _weights(y, order, wy)
            t = 0.0
            if sx >= 0 and sx + order < nx and sy >= 0 and sy + order < ny:
                for b in range(taps):
                    row = 0.0
                    for a in range(taps):
                        row += coefficients[sy + b, sx + a] * wx[a]
                    t += row * wy[b]
            else:
                for b in range(taps):
                    row = 0.0
                    yb = _mirror(sy + b, ny)
                    for a in range(taps):
                        row += coefficients[yb, _mirror(sx + a, nx)] * wx[a]
                    t += row * wy[b]
            out[i, j] = t


# ---- sunpy rotation method --------------------------------------------------------------------

def _rotation_sunpy_timelag(image, matrix, shift, order, missing, clip):
    """
    * Rotates with `sunpy_timelag.aia.register.affine_spline`: the B-spline interpolation of
      `scipy.ndimage.affine_transform` (the ``'scipy'`` method's numbers, to about 1e-15 relative),
      by multithreaded numba kernels (`scipy.ndimage` if numba is not installed).
    * The ``order`` parameter is the order of the spline interpolation, 0 to 5; the mode is
      ``'constant'``.
    """
    return affine_spline(image, matrix, shift, order=order, cval=missing)


try:
    from sunpy.image.transform import add_rotation_function
except ImportError:  # the array kernels work without sunpy
    pass
else:
    add_rotation_function(ROTATION_METHOD, allowed_orders=range(6), handles_clipping=False, handles_image_nans=False,
                          handles_nan_missing=True)(_rotation_sunpy_timelag)

r"""
Following the rotating Sun: the pixel mapping between a reference view and a frame, in numbers.

A frame derotated to a reference time shows, in each pixel of a reference grid, the patch of the
solar surface that lies behind that pixel at the reference time, wherever the Sun's rotation has
carried it by the frame's own time. The mapping from a reference pixel to the frame's pixel is that
of `sunpy.coordinates.propagate_with_solar_surface`, written out as the spherical geometry it is,
with distances in solar radii and every direction a 3-vector in heliographic Stonyhurst (HGS)
Cartesian coordinates:

1. **Pixel to line of sight.** A grid is a FITS gnomonic (``TAN``) projection of helioprojective
   coordinates: the pixel :math:`p` has intermediate coordinates :math:`(\xi, \eta) = M (p - p_0)`
   (radians; :math:`M` is ``CDELT`` times ``PC``) and direction

   .. math::

       w = C + \xi\, U + \eta\, V,

   with :math:`C` the direction of the tangent point :math:`(T_x, T_y)` = ``CRVAL`` and :math:`U,
   V` the directions of increasing :math:`T_x` and :math:`T_y` there. In helioprojective Cartesian
   axes (towards the Sun's centre, west, north) these are :math:`c = (\cos T_y \cos T_x, \cos T_y
   \sin T_x, \sin T_y)`, :math:`u = (-\sin T_x, \cos T_x, 0)`, :math:`v = (-\sin T_y \cos T_x,
   -\sin T_y \sin T_x, \cos T_y)`; an observer at HGS longitude :math:`L`, latitude :math:`B` and
   distance :math:`D` turns them into HGS by the columns :math:`(-o, X, Y)` with
   :math:`o = (\cos B \cos L, \cos B \sin L, \sin B)` (towards the observer), :math:`X = (-\sin L,
   \cos L, 0)` (west) and :math:`Y = o \times X` (north), as sunpy's Helioprojective, Heliocentric
   and Stonyhurst frames are related.
2. **Line of sight to the surface.** From the observer :math:`O = D\,o`, the ray :math:`O + s\,w`
   meets the unit sphere first at

   .. math::

       s = \frac{-O\cdot w - \sqrt{(O\cdot w)^2 - |w|^2 (D^2 - 1)}}{|w|^2},

   and misses it (an off-disk pixel) where the root is imaginary: sunpy's ``make_3d``.
3. **Rotation.** The surface point :math:`P` turns about the Sun's axis by

   .. math::

       \phi = \left(A + B \sin^2\beta + C \sin^4\beta\right) \Delta t + \Lambda,
       \qquad \sin\beta = P_z,

   the sidereal differential rotation of `sunpy.sun.models.differential_rotation` over the time
   :math:`\Delta t` from the reference to the frame, plus the turn :math:`\Lambda` of the
   Stonyhurst axes themselves over that time (they follow the Earth), which sunpy's transform
   between Stonyhurst frames of different times applies with the Sun's centre held fixed.
4. **Surface to pixel.** Seen from the frame's observer :math:`O'`, the point is visible where it
   faces the observer, :math:`P \cdot (O' - P) \ge 0`; its pixel is the inverse of step 1,
   :math:`\xi = (P - O')\cdot U' / (P - O')\cdot C'`, :math:`\eta = (P - O')\cdot V' / (P -
   O')\cdot C'`, :math:`p = M'^{-1} (\xi, \eta) + p'_0`.

These agree with sunpy's transforms to about :math:`10^{-8}` pixel. The mapping is smooth, so
`grid_coordinates` evaluates it exactly only on control points and interpolates between them, within
`MAPPING_TOLERANCE`, falling back to the exact mapping near the limb; `source_window` bounds the pixels
of a frame that it reaches. The frame's value at :math:`p` is then the interpolating B-spline of
`scipy.ndimage.map_coordinates` (`cupyx.scipy.ndimage` for CuPy arrays) of that window
(`derotate_frame`). Pixels off the disk at the reference time, rotated out of sight, or falling off the
frame get ``missing``.

Everything here is numbers (NumPy or CuPy arrays, floats); `sunpy_timelag.prep.PrepMixin.derotate`
reads the grids, observers and times from the cube with sunpy.
"""
import math
from dataclasses import dataclass

import numpy as np

from .aia.register import NAN_NEIGHBOURHOOD, POLES
from .backend import array_module, ndimage_module

__all__ = ["View", "pixel_to_surface", "rotate", "surface_to_pixel", "derotation_coordinates", "grid_coordinates",
           "source_window", "derotate_frame"]

#: Largest number of output pixels mapped and interpolated at once (bounds the temporary arrays).
BLOCK_PIXELS = 1 << 20
#: Spacing, in reference pixels, of the control points where the mapping is computed exactly.
STRIDE = 16
#: Largest estimated error of the interpolated mapping, in pixels; cells above it are mapped exactly.
MAPPING_TOLERANCE = 1e-4
#: Relative error allowed at a window's edge from the spline prefilter's mirrored boundary.
PREFILTER_TOLERANCE = 1e-7


@dataclass(frozen=True)
class View:
    """
    A helioprojective gnomonic (``TAN``) pixel grid and the observer that sees it, in numbers.

    Attributes
    ----------
    crpix : tuple of float
        ``(x, y)`` of the reference pixel, 0-based.
    matrix : tuple of tuple of float
        :math:`M`, ``((m_xx, m_xy), (m_yx, m_yy))``: radians of intermediate coordinate
        :math:`(\\xi, \\eta)` per pixel of ``(x, y)`` (``CDELT`` times ``PC``).
    crval : tuple of float
        ``(Tx, Ty)`` of the tangent point, radians.
    observer : tuple of float
        The observer's heliographic Stonyhurst longitude and latitude (radians) and distance from
        the Sun's centre (solar radii).
    """

    crpix: tuple
    matrix: tuple
    crval: tuple
    observer: tuple

    def with_observer(self, observer):
        """The same grid seen by another observer ``(lon, lat, distance)``."""
        return View(self.crpix, self.matrix, self.crval, tuple(float(v) for v in observer))

    def axes(self):
        """
        The observer's position :math:`O` and the grid's directions :math:`C, U, V`, in HGS.

        Returns
        -------
        tuple of tuple of float
            ``(O, C, U, V)``, each ``(x, y, z)``.
        """
        o, west, north = self.observer_axes()
        tx, ty = self.crval
        c = (math.cos(ty) * math.cos(tx), math.cos(ty) * math.sin(tx), math.sin(ty))
        u = (-math.sin(tx), math.cos(tx), 0.0)
        v = (-math.sin(ty) * math.cos(tx), -math.sin(ty) * math.sin(tx), math.cos(ty))

        def to_hgs(h):  # helioprojective Cartesian (to the Sun, west, north) to HGS
            return tuple(-h[0] * o[k] + h[1] * west[k] + h[2] * north[k] for k in range(3))

        return tuple(self.observer[2] * k for k in o), to_hgs(c), to_hgs(u), to_hgs(v)

    def observer_axes(self):
        """
        The unit vectors :math:`o` (towards the observer), :math:`X` (west) and :math:`Y` (north), in HGS.

        Returns
        -------
        tuple of tuple of float
        """
        lon, lat, _ = self.observer
        return ((math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon), math.sin(lat)),
                (-math.sin(lon), math.cos(lon), 0.0),
                (-math.sin(lat) * math.cos(lon), -math.sin(lat) * math.sin(lon), math.cos(lat)))


def _dot(a, b):
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def pixel_to_surface(x, y, view):
    """
    The point of the solar surface (unit sphere, HGS Cartesian) behind each pixel of ``view``.

    Parameters
    ----------
    x, y : numpy.ndarray or cupy.ndarray
        Pixel coordinates, 0-based, of broadcastable shapes (e.g. a row of ``x`` and a column of
        ``y`` for a whole grid).
    view : `View`

    Returns
    -------
    tuple of arrays
        ``(Px, Py, Pz)``, NaN where the line of sight misses the Sun.
    """
    xp = array_module(x)
    origin, c, u, v = view.axes()
    (mxx, mxy), (myx, myy) = view.matrix
    dx, dy = x - view.crpix[0], y - view.crpix[1]
    # w = C + xi U + eta V and O . w are affine in (x, y): one full-size operation each
    w = tuple((c[k] + dy * (mxy * u[k] + myy * v[k])) + dx * (mxx * u[k] + myx * v[k]) for k in range(3))
    ow = (_dot(origin, c) + dy * (mxy * _dot(origin, u) + myy * _dot(origin, v))) + \
        dx * (mxx * _dot(origin, u) + myx * _dot(origin, v))
    norm2 = _dot(w, w)
    root2 = ow * ow - norm2 * (_dot(origin, origin) - 1.0)
    hit = (root2 >= 0) & (ow < 0)  # the ray meets the sphere, in front of the observer
    s = xp.where(hit, -(ow + xp.sqrt(xp.maximum(root2, 0.0))) / norm2, np.nan)
    return tuple(origin[k] + s * w[k] for k in range(3))


def rotate(point, seconds, frame_angle, rates):
    r"""
    Turn surface points about the Sun's axis by the differential rotation over ``seconds``.

    Parameters
    ----------
    point : tuple of arrays
        ``(Px, Py, Pz)`` on the unit sphere.
    seconds : float
        :math:`\Delta t`.
    frame_angle : float
        :math:`\Lambda`, radians: the turn of the heliographic frame over the same time.
    rates : tuple of float
        :math:`(A, B, C)`, radians per second (sidereal).

    Returns
    -------
    tuple of arrays
    """
    xp = array_module(point[0])
    px, py, pz = point
    sin2 = pz * pz
    angle = (rates[0] * seconds + frame_angle) + sin2 * (rates[1] * seconds + sin2 * (rates[2] * seconds))
    cos, sin = xp.cos(angle), xp.sin(angle)
    return px * cos - py * sin, px * sin + py * cos, pz


def surface_to_pixel(point, view):
    """
    The pixel of ``view`` where each surface point is seen, NaN where it faces away from the observer.

    Parameters
    ----------
    point : tuple of arrays
        ``(Px, Py, Pz)`` on the unit sphere, HGS Cartesian.
    view : `View`

    Returns
    -------
    x, y : arrays
        0-based pixel coordinates.
    """
    xp = array_module(point[0])
    origin, c, u, v = view.axes()
    visible = _dot(point, point) <= _dot(point, origin)  # P . (O - P) >= 0 (False for NaN)
    depth = xp.where(visible, _dot(point, c) - _dot(origin, c), np.nan)  # (P - O) . C
    xi = (_dot(point, u) - _dot(origin, u)) / depth
    eta = (_dot(point, v) - _dot(origin, v)) / depth
    (mxx, mxy), (myx, myy) = view.matrix
    determinant = mxx * myy - mxy * myx
    x = (myy / determinant) * xi - (mxy / determinant) * eta + view.crpix[0]
    y = (mxx / determinant) * eta - (myx / determinant) * xi + view.crpix[1]
    return x, y


def derotation_coordinates(x, y, reference, source, seconds, frame_angle, rates):
    """
    The pixel of the source frame that shows the surface behind pixel ``(x, y)`` of the reference grid.

    Parameters
    ----------
    x, y : arrays
        Pixels of the reference grid.
    reference, source : `View`
        The reference grid and observer; the frame's grid and observer.
    seconds, frame_angle, rates
        See `rotate`: from the reference time to the frame's.

    Returns
    -------
    x, y : arrays
        Pixels of the source frame, NaN where there is none (off-disk, or rotated out of sight).
    """
    return surface_to_pixel(rotate(pixel_to_surface(x, y, reference), seconds, frame_angle, rates), source)


def _cubic_weights(t):
    """The weights of the cubic through nodes -1, 0, 1, 2 (Lagrange), at ``t`` in [0, 1)."""
    return -t * (t - 1) * (t - 2) / 6, (t + 1) * (t - 1) * (t - 2) / 2, -(t + 1) * t * (t - 2) / 2, \
        (t + 1) * t * (t - 1) / 6


def _fourth_difference(f, axis):
    """``|f[m-2] - 4 f[m-1] + 6 f[m] - 4 f[m+1] + f[m+2]|`` along ``axis``, infinite where undefined."""
    xp = array_module(f)
    f = xp.moveaxis(f, axis, 0)
    d = xp.abs(f[:-4] - 4 * f[1:-3] + 6 * f[2:-2] - 4 * f[3:-1] + f[4:])
    return xp.moveaxis(xp.where(xp.isnan(d), np.inf, d), 0, axis)


def _window_max(a, size, axis):
    """The maximum of ``size`` consecutive elements of ``a`` along ``axis``."""
    xp = array_module(a)
    a = xp.moveaxis(a, axis, 0)
    out = a[: a.shape[0] - size + 1]
    for k in range(1, size):
        out = xp.maximum(out, a[k : a.shape[0] - size + 1 + k])
    return xp.moveaxis(out, 0, axis)


def _stride(view):
    """
    The spacing of the control points of `grid_coordinates` in pixels of ``view``: `STRIDE`, or less
    for a disk smaller than 8 strides in radius (at least 2).
    """
    return int(min(STRIDE, max(2, _radius_pixels(view) // 8)))


def grid_coordinates(rows, nx, reference, source, seconds, frame_angle, rates, *, xp=np):
    r"""
    `derotation_coordinates` of rows ``rows[0]:rows[1]`` of the reference grid, all ``nx`` columns.

    The mapping is smooth, so it is computed exactly on control points every `STRIDE` pixels (fewer
    for a disk under 8 strides in radius) and interpolated between them by the tensor-product cubic
    through the 4 x 4 nearest control points, whose error in a cell is

    .. math::

        \epsilon \approx \frac{(t + 1)\, t\, (1 - t)(2 - t)}{24} \left(|\Delta_x^4| + |\Delta_y^4|\right)
        \le 0.0234 \left(|\Delta_x^4| + |\Delta_y^4|\right),

    with :math:`\Delta^4` the fourth differences of the control values around the cell (:math:`h^4`
    times the fourth derivative). Cells whose estimate exceeds `MAPPING_TOLERANCE`, or that touch
    a point without a source pixel (the limb, a part rotated out of sight), are mapped exactly,
    pixel by pixel. On the disk away from the limb the fourth derivative is of order
    :math:`R^{-3}` (:math:`R` the disk's radius in pixels), so nearly every cell is interpolated.

    Parameters
    ----------
    rows : tuple of int
        ``(first, stop)``.
    nx : int
        Columns of the reference grid.
    reference, source, seconds, frame_angle, rates
        See `derotation_coordinates`.
    xp : module, optional
        ``numpy`` or ``cupy``: where the arrays are made.

    Returns
    -------
    x, y : arrays
        ``(stop - first, nx)`` pixels of the source frame, NaN where there is none.
    """
    first, stop = rows
    h = _stride(reference)
    # whole cells of h x h pixels: rows of cells top ... bottom - 1, columns 0 ... ncx - 1; control
    # points on their corners, from two cells before the first to three after the last
    top, bottom, ncx = first // h, -(-stop // h), -(-nx // h)
    control_x = xp.arange(-2, ncx + 3, dtype=np.float64) * h
    control_y = xp.arange(top - 2, bottom + 3, dtype=np.float64)[:, np.newaxis] * h
    exact = derotation_coordinates(control_x, control_y, reference, source, seconds, frame_angle, rates)
    # per cell c (corners c + 2, c + 3; cubic stencil c + 1 ... c + 4): estimated error, no source pixel
    error, undefined = 0.0, True
    for f in exact:
        along_x = _window_max(_window_max(_fourth_difference(f, 1), 2, 1)[1:], 4, 0)
        along_y = _window_max(_window_max(_fourth_difference(f, 0), 2, 0)[:, 1:], 4, 1)
        error = error + along_x[:-1] + along_y[:, :-1]
        undefined = undefined & ~_window_max(_window_max(~xp.isnan(f[1:-1, 1:-1]), 4, 0), 4, 1)
    # a cell whose whole stencil has no source pixel has none (the regions with one are convex and
    # much larger than a stencil); a cell with some, or a large estimated error, is mapped exactly
    exact_cells = (0.0234 * error > MAPPING_TOLERANCE) & ~undefined
    # the cubic's weights depend only on the pixel's place in its cell: interpolate cell by cell
    weights = _cubic_weights(xp.arange(h) / h)
    crop = slice(first - top * h, stop - top * h), slice(0, nx)
    out = []
    for f in exact:
        f = xp.where(xp.isnan(f), 0.0, f)
        f = sum(f[:, 1 + k : 1 + k + ncx, np.newaxis] * w for k, w in enumerate(weights)).reshape(f.shape[0], -1)
        f = sum(f[1 + k : 1 + k + bottom - top, np.newaxis] * w[:, np.newaxis] for k, w in enumerate(weights))
        out.append(f.reshape(-1, f.shape[-1])[crop])
    for cells, value in ((undefined, np.nan), (exact_cells, None)):
        if not bool(cells.any()):
            continue
        pixels = xp.repeat(xp.repeat(cells, h, axis=0), h, axis=1)[crop]
        if value is not None:
            out[0][pixels] = out[1][pixels] = value
            continue
        y, x = xp.nonzero(pixels)
        out[0][y, x], out[1][y, x] = derotation_coordinates(x.astype(np.float64), (y + first).astype(np.float64),
                                                            reference, source, seconds, frame_angle, rates)
    return tuple(out)


def _limb(view, n):
    """``n`` points of the limb seen from ``view``'s observer, a hair inside it (HGS Cartesian)."""
    o, west, north = view.observer_axes()
    cos_alpha = 1.0 / view.observer[2] + 1e-9  # the limb is where P . O = 1
    sin_alpha = math.sqrt(1.0 - cos_alpha * cos_alpha)
    psi = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    return tuple(cos_alpha * o[k] + sin_alpha * (np.cos(psi) * west[k] + np.sin(psi) * north[k]) for k in range(3))


def _radius_pixels(view):
    """The solar disk's radius in pixels of ``view`` (the larger axis scale)."""
    scale = min(math.hypot(*view.matrix[0]), math.hypot(*view.matrix[1]))
    return math.asin(1.0 / view.observer[2]) / scale


def _inside(x, y, shape):
    """
    Whether positions ``(x, y)`` fall on a frame of ``shape``: within its outer pixels' outer edges, as
    `reproject` reads it (False for NaN).
    """
    return (x >= -0.5) & (x <= shape[1] - 0.5) & (y >= -0.5) & (y <= shape[0] - 0.5)


def _prefilter_margin(order):
    """
    Pixels beyond the interpolation's footprint that a window of a frame keeps, so that the spline
    prefilter's mirrored edge changes the coefficients used by less than `PREFILTER_TOLERANCE`.

    Parameters
    ----------
    order : int
        Spline order, 0 to 5.

    Returns
    -------
    int
    """
    if order < 2:
        return 0
    pole = max(abs(z) for z in POLES[order])
    return math.ceil(math.log(PREFILTER_TOLERANCE) / math.log(pole))


def source_window(shape, reference, source, seconds, frame_angle, rates, frame_shape, order):
    """
    The window of a source frame that derotating it onto the reference grid reads.

    The mapping is smooth and one-to-one where it is defined, so the pixels it reaches are bounded
    by the images of the edges of the region where it is defined: the reference grid's edges, the
    reference limb within the grid, and the source limb where the rotation carries part of the grid
    out of sight (the limbs only where the grid's edges leave the disk or the part in sight: both
    are convex). Each is sampled every pixel or less; the window adds the interpolation's footprint
    and the prefilter's margin, clipped to the frame.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)`` of the reference grid.
    reference, source, seconds, frame_angle, rates
        See `derotation_coordinates`.
    frame_shape : tuple of int
        ``(ny, nx)`` of the source frame.
    order : int
        Spline order.

    Returns
    -------
    tuple of int or None
        ``(y0, y1, x0, x1)``, the window ``[y0:y1, x0:x1]`` of the frame; `None` if no pixel of the
        grid has a source pixel in the frame.
    """
    ny, nx = shape
    edges_x = np.concatenate([np.arange(nx), np.arange(nx), np.zeros(ny), np.full(ny, nx - 1)], dtype=np.float64)
    edges_y = np.concatenate([np.zeros(nx), np.full(nx, ny - 1), np.arange(ny), np.arange(ny)], dtype=np.float64)
    x, y = [], []
    sx, sy = derotation_coordinates(edges_x, edges_y, reference, source, seconds, frame_angle, rates)
    x.append(sx), y.append(sy)
    if not np.isfinite(sx).all():  # else the whole grid is on the disk and in sight (both regions are convex)
        # the reference limb, within the grid
        limb = _limb(reference, max(64, math.ceil(4 * np.pi * _radius_pixels(reference))))
        rx, ry = surface_to_pixel(limb, reference)
        limb = tuple(k[_inside(rx, ry, shape)] for k in limb)
        sx, sy = surface_to_pixel(rotate(limb, seconds, frame_angle, rates), source)
        x.append(sx), y.append(sy)
        # the source limb, where it is the image of a point of the grid seen at the reference time
        limb = _limb(source, max(64, math.ceil(4 * np.pi * _radius_pixels(source))))
        rx, ry = surface_to_pixel(rotate(limb, -seconds, -frame_angle, rates), reference)
        sx, sy = surface_to_pixel(limb, source)
        keep = _inside(rx, ry, shape)
        x.append(sx[keep]), y.append(sy[keep])
    x, y = np.concatenate(x), np.concatenate(y)
    keep = _inside(x, y, frame_shape)  # as derotate_frame: no value off the frame (nor NaN)
    if not keep.any():
        return None
    margin = order // 2 + 2 + _prefilter_margin(order)  # the spline's reach, a pixel, the prefilter's
    x, y = x[keep], y[keep]
    x0, x1 = max(math.floor(x.min()) - margin, 0), min(math.ceil(x.max()) + margin + 1, frame_shape[1])
    y0, y1 = max(math.floor(y.min()) - margin, 0), min(math.ceil(y.max()) + margin + 1, frame_shape[0])
    return y0, y1, x0, x1


def derotate_frame(window, origin, reference, source, seconds, frame_angle, rates, shape, frame_shape, *,
                   order=3, missing=np.nan, dtype=None):
    """
    One frame derotated onto the reference grid, from the window of it that the mapping reaches.

    Parameters
    ----------
    window : numpy.ndarray or cupy.ndarray
        ``frame[y0:y1, x0:x1]``, 2-D.
    origin : tuple of int
        ``(y0, x0)``.
    reference, source, seconds, frame_angle, rates
        See `derotation_coordinates`.
    shape : tuple of int
        ``(ny, nx)`` of the reference grid (the output).
    frame_shape : tuple of int
        ``(ny, nx)`` of the whole source frame.
    order : int, optional
        Spline order, 0 to 5.
    missing : float, optional
        Value of the pixels without a source pixel: off the disk, rotated out of sight, or outside
        the frame. NaN pixels of the window make the output pixels whose interpolation footprint
        they touch NaN.
    dtype : numpy.dtype, optional
        Of the result; default the window's floating-point type (at least float32).

    Returns
    -------
    numpy.ndarray or cupy.ndarray
        ``shape``, on the window's device.
    """
    xp = array_module(window)
    ndimage = ndimage_module(xp)
    dtype = np.dtype(dtype or np.result_type(window.dtype, np.float32))
    window = xp.asarray(window, dtype=np.float64)
    nan = xp.isnan(window)
    has_nan = bool(nan.any())
    if has_nan:  # as sunpy and register: interpolate the median there, then mark the NaNs' footprint
        window = xp.where(nan, xp.nanmedian(window), window)
        nan = ndimage.maximum_filter(nan.astype(np.float32), size=NAN_NEIGHBOURHOOD[order], mode="constant")
    coefficients = ndimage.spline_filter(window, order, output=np.float64, mode="mirror") if order > 1 else window
    ny, nx = shape
    out = xp.empty(shape, dtype=dtype)
    rows = max(1, BLOCK_PIXELS // max(nx, 1))
    for start in range(0, ny, rows):
        stop = min(start + rows, ny)
        sx, sy = grid_coordinates((start, stop), nx, reference, source, seconds, frame_angle, rates, xp=xp)
        valid = _inside(sx, sy, frame_shape)
        # the outer half of an edge pixel takes its value (as reproject does)
        coordinates = xp.stack([xp.clip(sy, 0, frame_shape[0] - 1) - origin[0],
                                xp.clip(sx, 0, frame_shape[1] - 1) - origin[1]])
        coordinates = xp.where(valid, coordinates, -1.0e3)  # far outside the window: 0, replaced below
        block = ndimage.map_coordinates(coefficients, coordinates, order=order, mode="constant", cval=0.0,
                                        prefilter=False)
        block = xp.where(valid, block, missing)
        if has_nan:
            touched = ndimage.map_coordinates(nan, coordinates, order=min(order, 1), mode="constant", cval=0.0)
            block[touched > 0] = np.nan
        out[start:stop] = block
    return out

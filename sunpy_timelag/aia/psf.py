r"""
The AIA point spread function (PSF), as defined by `aiapy.psf.psf`, computed fast.

The model (Grigis et al. 2012) is a sum of narrow Gaussian diffraction spikes from the meshes of the
entrance filter and of the focal-plane filter, each added to a Gaussian core, and the two patterns
combined by a (periodic) convolution. aiapy evaluates every spike as a full-frame exponential (1200
of them at 4096 x 4096) and convolves with three full-frame FFTs. Here each spike is written as a
product of a function of :math:`x` and a function of :math:`y` a few pixels wide, and the focal-plane
pattern is small (its spikes are a fraction of a pixel apart), so the convolution is done directly,
spike by spike of the entrance pattern, as two one-dimensional convolutions in a compiled (numba)
kernel. The numbers are aiapy's to rounding.

Only the mesh constants need aiapy (imported when a PSF is computed); the array code uses NumPy and
numba alone.
"""
import functools
import hashlib
import operator
import os
from pathlib import Path
from typing import NamedTuple

import numba
import numpy as np

from ..io.write import write_atomically

__all__ = ["psf"]

# Two constants that aiapy.psf.psf keeps in code rather than in filter_mesh_parameters.
FOCAL_PLANE_ANGLES = (45.0, -45.0)  # deg, the two arms of the focal-plane filter mesh
AREA_NOT_MESH = 0.82  # fraction of the aperture not covered by the mesh
DEFAULT_ORDERS = tuple(float(m) for m in range(-100, 101))
CACHE_ENV = "SUNPY_TIMELAG_CACHE_DIR"


class _MeshParameters(NamedTuple):
    """The numbers of `aiapy.psf.filter_mesh_parameters` for one channel, as plain floats."""

    entrance_angles: tuple  # deg
    spacing_entrance: float  # pixel
    spacing_focal_plane: float  # pixel
    mesh_ratio: float  # mesh pitch / mesh width
    width: float  # 1 / pixel**2, the Gaussian exp(-width r**2)


def psf(channel, *, size=4096, use_preflightcore=False, diffraction_orders=None, cache_dir=None):
    r"""
    The composite point spread function of an AIA EUV channel.

    Same definition and values as `aiapy.psf.psf` (which is fixed at ``size=4096``). For each filter
    the diffraction pattern on the pixel grid :math:`x_i = i - N/2`, :math:`y_j = j - N/2` is

    .. math::

        \mathrm{PSF}_{e,f}(x, y) = (1 - a)\,\frac{M(x, y)}{\sum M} + a\,\frac{G(x)\,G(y)}{\sum G\,G},
        \qquad
        M(x, y) = \sum_{m \ne 0} \sum_{k} \mathrm{sinc}^2\!\left(\frac{m}{r}\right)
                  G(x - m s \cos\theta_k)\,G(y - m s \sin\theta_k),

    with :math:`G(u) = \exp(-w u^2)`, :math:`w` the mesh ``width``, :math:`r` the ratio of mesh pitch
    to mesh width, :math:`s` the spike spacing of the filter, :math:`\theta_k` the mesh arm angles (the
    four of the entrance filter; :math:`\pm 45^\circ` for the focal-plane filter), :math:`m` the
    diffraction orders and :math:`a = 0.82` the fraction of the aperture not covered by the mesh. The
    composite PSF is aiapy's

    .. math::

        \mathrm{PSF} = \frac{1}{N^2}\left|\mathcal{F}\left\{\mathcal{F}\{\mathrm{PSF}_f\}\,
                       \mathcal{F}\{\mathrm{PSF}_e\}\right\}\right|
                     = \left|(\mathrm{PSF}_f \circledast \mathrm{PSF}_e)(-x, -y)\right|,

    rolled by :math:`N/2` so that its peak sits at pixel ``(N // 2, N // 2)``; it sums to 1.

    Each term of either pattern is :math:`c_k\,G(x - \Delta x_k)\,G(y - \Delta y_k)`, and :math:`G`
    is negligible (below :math:`10^{-30}` of its peak) more than a few pixels from its centre: it is
    kept on :math:`L = 11` pixels. The focal-plane spikes are a fraction of a pixel apart, so
    :math:`\mathrm{PSF}_f` fits in a window of :math:`W \times W` pixels (:math:`W` = 53 to 159 for
    the default orders), and the convolution is, for each of the :math:`n` = 801 terms of
    :math:`\mathrm{PSF}_e`, that window convolved with its :math:`G` along :math:`x` and then along
    :math:`y`, added into the frame: :math:`2 n W^2 L` (:math:`10^8` to :math:`5 \times 10^8`)
    multiply-adds in a compiled kernel, instead of aiapy's :math:`1200 N^2` exponentials and three
    :math:`N^2` FFTs. Where no spike reaches, the PSF is exactly 0 (aiapy's FFTs leave rounding noise
    of about :math:`10^{-17}` of the peak there).

    Results are cached in memory per channel parameters, ``size`` and orders (the same read-only array
    is returned on every call) and, when ``cache_dir`` is given or the ``SUNPY_TIMELAG_CACHE_DIR``
    environment variable is set, on disk as ``.npy`` files named by a hash of the mesh parameters,
    ``size`` and orders.

    Parameters
    ----------
    channel : `~astropy.units.Quantity` or int
        Wavelength of the channel, e.g. ``171 * u.angstrom`` or ``171``: one of 94, 131, 171, 193, 211,
        304, 335 Å.
    size : int, optional
        Side of the square pixel grid. 4096 (the full AIA frame) reproduces aiapy. A smaller grid
        evaluates the same formula on that grid; it is *not* a crop of the full-frame PSF (the pattern
        is normalised over, and convolved periodically on, the smaller grid). To deconvolve a cutout,
        give `~sunpy_timelag.aia.deconvolve` the full-frame PSF: it crops it.
    use_preflightcore : bool, optional
        Use the pre-flight widths of the PSF core.
    diffraction_orders : array-like, optional
        Diffraction orders :math:`m` to sum over (order 0 is the core and is skipped); default
        -100 to 100.
    cache_dir : str or `~pathlib.Path`, optional
        Directory for the on-disk cache; default ``$SUNPY_TIMELAG_CACHE_DIR`` if set, else none.

    Returns
    -------
    numpy.ndarray
        ``(size, size)`` float64 array, read-only.

    Raises
    ------
    ValueError
        Unknown channel, ``size`` < 2, no non-zero diffraction order, or no diffraction spike on the
        grid (a grid too small for the orders; aiapy's pattern would be NaN).
    TypeError
        ``size`` not an integer.

    References
    ----------
    .. [1] Grigis, P., Su, Y., Weber, M., et al., 2012, AIA PSF Characterization and Deconvolution,
           https://sohoftp.nascom.nasa.gov/solarsoft/sdo/aia/idl/psf/DOC/psfreport.pdf
    """
    size = operator.index(size)
    if size < 2:
        raise ValueError(f"size must be at least 2, got {size}")
    orders = DEFAULT_ORDERS if diffraction_orders is None else tuple(
        float(m) for m in np.ravel(diffraction_orders)
    )
    if not any(orders):
        raise ValueError("diffraction_orders must contain at least one non-zero order")
    if cache_dir is not None and not isinstance(cache_dir, str | os.PathLike):
        raise TypeError(f"cache_dir must be a folder path, got {cache_dir!r}")
    cache_dir = cache_dir if cache_dir is not None else os.environ.get(CACHE_ENV)
    params = _mesh_parameters(channel, use_preflightcore=use_preflightcore)
    return _cached_psf(params, size, orders, None if cache_dir is None else str(cache_dir))


def _mesh_parameters(channel, *, use_preflightcore=False):
    """
    The filter-mesh parameters of a channel, from `aiapy.psf.filter_mesh_parameters`.

    Parameters
    ----------
    channel : `~astropy.units.Quantity` or int
        Channel wavelength (a number is taken in Å).
    use_preflightcore : bool, optional
        Use the pre-flight core width.

    Returns
    -------
    _MeshParameters

    Raises
    ------
    ValueError
        If aiapy has no mesh parameters for ``channel``.
    """
    from aiapy.psf import filter_mesh_parameters

    table = {int(round(key.to_value("angstrom"))): value
             for key, value in filter_mesh_parameters(use_preflightcore=use_preflightcore).items()}
    try:
        wavelength = channel.to_value("angstrom") if hasattr(channel, "unit") else float(channel)
    except (TypeError, ValueError, AttributeError) as error:
        raise ValueError(f"unknown AIA channel {channel!r}; expected one of {sorted(table)} Å") from error
    if abs(wavelength - round(wavelength)) > 1e-6 or round(wavelength) not in table:
        raise ValueError(f"unknown AIA channel {channel!r}; expected one of {sorted(table)} Å")
    mesh = table[round(wavelength)]
    return _MeshParameters(
        entrance_angles=tuple(mesh["angle_arm"].to_value("deg").tolist()),
        spacing_entrance=float(mesh["spacing_e"].value),
        spacing_focal_plane=float(mesh["spacing_fp"].value),
        mesh_ratio=float((mesh["mesh_pitch"] / mesh["mesh_width"]).decompose().value),
        width=float(mesh["width"].value),
    )


@functools.lru_cache(maxsize=8)
def _cached_psf(params, size, orders, cache_dir):
    if cache_dir is None:
        result = _composite_psf(params, size, orders)
    else:
        digest = hashlib.sha256(repr((params, size, orders)).encode()).hexdigest()[:16]
        path = Path(cache_dir) / f"aia_psf_{size}_{digest}.npy"
        if path.exists():
            result = np.load(path)
        else:
            result = _composite_psf(params, size, orders)
            write_atomically(path, lambda temporary: np.save(temporary, result))  # never seen partial
    result.flags.writeable = False
    return result


def _composite_psf(params, size, orders):
    """The composite PSF from plain numbers: the array kernel of `psf`, without cache or units."""
    # aiapy's |F{F{PSF_f} F{PSF_e}}| / N**2, rolled by N//2, is |c(N//2 - x)| with c = PSF_f (*) PSF_e.
    # Storing PSF_f reflected about N//2 and PSF_e reflected about 0 makes the plain periodic
    # convolution of the two stored arrays that, with no flip or roll afterwards; it is non-negative.
    entrance = _filter_terms(size, params.width, params.spacing_entrance, params.entrance_angles,
                             params.mesh_ratio, orders, origin=0)
    focal_plane = _filter_terms(size, params.width, params.spacing_focal_plane, FOCAL_PLANE_ANGLES,
                                params.mesh_ratio, orders, origin=size // 2)
    window_y, window_x, window = _dense_pattern(*focal_plane)
    composite = np.zeros((size, size))
    _add_convolved_terms(composite, window, window_y, window_x, *entrance)
    return composite


def _filter_terms(size, width, spacing, angles, mesh_ratio, orders, origin):
    r"""
    The terms of the diffraction pattern of one filter mesh (``PSF_e`` or ``PSF_f`` of `psf`).

    The core and the spikes of orders :math:`m \ne 0` along each arm :math:`\theta` are the terms
    :math:`c_k G(x - \Delta x_k) G(y - \Delta y_k)`, weighted by :math:`a / \sum G G` and
    :math:`(1 - a) \mathrm{sinc}^2(m/r) / \sum M` (sums from the row sums of the factors), so that the
    pattern has unit sum. The value at pixel ``(j, i)`` is stored at ``((origin - j) % size,
    (origin - i) % size)``.

    Returns
    -------
    start_y, g_y, start_x, g_x, weights : numpy.ndarray
        Per term: the bands of `_gaussian_bands` along each axis, and :math:`c_k`.
    """
    orders = np.array([m for m in orders if m != 0])
    angles = np.deg2rad(angles)
    shift_x = np.concatenate([[0.0], np.outer(orders, spacing * np.cos(angles)).ravel()])
    shift_y = np.concatenate([[0.0], np.outer(orders, spacing * np.sin(angles)).ravel()])
    intensity = np.repeat(np.sinc(orders / mesh_ratio) ** 2, len(angles))
    start_x, g_x = _gaussian_bands(size, width, shift_x, origin)
    start_y, g_y = _gaussian_bands(size, width, shift_y, origin)
    term_sums = g_x.sum(axis=1) * g_y.sum(axis=1)
    spike_sum = intensity @ term_sums[1:]
    if not spike_sum > 0:
        raise ValueError(f"no diffraction spike of the given orders falls on a {size} x {size} grid")
    weights = np.concatenate([[AREA_NOT_MESH / term_sums[0]], (1 - AREA_NOT_MESH) * intensity / spike_sum])
    on_grid = term_sums > 0  # spikes beyond the grid are not part of the pattern
    return start_y[on_grid], g_y[on_grid], start_x[on_grid], g_x[on_grid], weights[on_grid]


def _gaussian_bands(size, width, shifts, origin):
    r"""
    The one-dimensional Gaussians :math:`G_k(i) = \exp(-w (i - N/2 - \Delta_k)^2)` as short bands.

    Each band keeps the :math:`L = 2h + 1` pixels nearest its centre, :math:`h = \lceil\sqrt{70 / w}
    \rceil + 1` (beyond, the Gaussian is below :math:`e^{-70} \approx 4 \times 10^{-31}` of its
    peak), and is 0 at pixels outside the grid. Pixel ``i`` is stored at ``(origin - i) % size``.

    Returns
    -------
    start : numpy.ndarray
        ``(len(shifts),)`` integers: the stored index (not yet wrapped) of each band's first value.
    values : numpy.ndarray
        ``(len(shifts), L)``: the band, in order of increasing stored index.
    """
    half = int(np.ceil(np.sqrt(70 / width))) + 1
    centres = 0.5 * size + shifts
    columns = np.rint(centres)[:, None] + np.arange(half, -half - 1, -1)  # stored index increasing
    # Pixel coordinates written as aiapy's, (i + 0.5) - (size/2 + shift + 0.5), for the same rounding.
    offsets = (columns + 0.5) - (centres[:, None] + 0.5)
    values = np.exp(-width * offsets * offsets)
    values[(columns < 0) | (columns >= size)] = 0
    return (origin - columns[:, 0]).astype(np.intp), values


def _dense_pattern(start_y, g_y, start_x, g_x, weights):
    """
    The sum of the terms of `_filter_terms` as a dense window just large enough to hold them.

    Returns
    -------
    window_y, window_x : int
        Stored index (not yet wrapped) of the window's first row and column.
    window : numpy.ndarray
        ``sum_k weights[k] * outer(g_y[k], g_x[k])``, each term at its place in the window.
    """
    length = g_x.shape[1]
    window_y, window_x = int(start_y.min()), int(start_x.min())
    rows_y = _placed(g_y, start_y - window_y, int(start_y.max()) - window_y + length)
    rows_x = _placed(g_x, start_x - window_x, int(start_x.max()) - window_x + length)
    return window_y, window_x, (rows_y.T * weights) @ rows_x


def _placed(bands, offsets, length):
    """The ``(len(bands), length)`` matrix with each band written from its column offset on."""
    rows = np.zeros((len(bands), length))
    np.put_along_axis(rows, offsets[:, None] + np.arange(bands.shape[1]), bands, axis=1)
    return rows


def _jit(function=None, **options):
    """
    numba-compile ``function`` (``nogil``, and ``options``), cached on disk where numba finds a
    writable cache location; with ``options`` only, a decorator.
    """
    if function is None:
        return functools.partial(_jit, **options)
    try:
        return numba.njit(nogil=True, cache=True, **options)(function)
    except RuntimeError:  # "cannot cache function ...: no locator available": compile in each process
        return numba.njit(nogil=True, **options)(function)


@_jit
def _add_convolved_terms(out, window, window_y, window_x, start_y, g_y, start_x, g_x, weights):
    """
    Add to ``out`` the periodic convolution of ``window`` with the separable terms of `_filter_terms`.

    ``window``'s first pixel is at stored index ``(window_y, window_x)``; term ``k`` is
    ``weights[k] * outer(g_y[k], g_x[k])`` from stored index ``(start_y[k], start_x[k])`` on. Each
    term's convolution is the window convolved along x with ``g_x[k]``, then along y with ``g_y[k]``.
    """
    size = out.shape[0]
    height, width = window.shape
    length = g_x.shape[1]
    along_x = np.empty((height, width + length - 1))
    patch = np.empty((height + length - 1, width + length - 1))
    for k in range(len(weights)):
        along_x[:] = 0.0
        for j in range(height):
            for tap in range(length):
                g = weights[k] * g_x[k, tap]
                for i in range(width):
                    along_x[j, i + tap] += g * window[j, i]
        patch[:] = 0.0
        for tap in range(length):
            g = g_y[k, tap]
            for j in range(height):
                for i in range(patch.shape[1]):
                    patch[j + tap, i] += g * along_x[j, i]
        first_column = (start_x[k] + window_x) % size
        for j in range(patch.shape[0]):
            row = (start_y[k] + window_y + j) % size
            column = first_column
            for i in range(patch.shape[1]):
                out[row, column] += patch[j, i]
                column += 1
                if column == size:
                    column = 0

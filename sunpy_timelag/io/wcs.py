"""
The cube's 3-D WCS: helioprojective celestial axes and a tabulated time axis, as a gWCS.

The celestial part is the FITS (TAN) projection of one frame, the time axis a
`~astropy.modeling.models.Tabular1D` lookup of the frames' observation times, so an
irregular cadence is represented exactly. The two are combined in a
`~gwcs.coordinate_frames.CompositeFrame`, as dkist builds its datasets.
"""
import astropy.units as u
import gwcs
import numpy as np
from astropy.modeling import models
from astropy.wcs import WCS
from gwcs import coordinate_frames as cf
from gwcs.utils import make_fitswcs_transform

__all__ = ["timelag_wcs", "lag_wcs", "resample_celestial_wcs", "tangent_plane_wcs"]


def _celestial_transform(celestial_wcs):
    """Pixel (0-based) to celestial (deg) transform of a 2-D FITS WCS, as an astropy model."""
    projection = celestial_wcs.wcs.ctype[0][-3:]
    header = celestial_wcs.to_header()
    linear = make_fitswcs_transform(header)
    # make_fitswcs_transform stops at the projection plane, in the units of CDELT
    to_degrees = u.Unit(celestial_wcs.wcs.cunit[0]).to(u.deg)
    crval = u.Quantity(celestial_wcs.wcs.crval, celestial_wcs.wcs.cunit[0]).to_value(u.deg)
    return (
        linear
        | models.Scale(to_degrees) & models.Scale(to_degrees)
        | getattr(models, f"Pix2Sky_{projection}")()
        | models.RotateNative2Celestial(crval[0], crval[1], celestial_wcs.wcs.lonpole)
    )


def timelag_wcs(celestial_wcs, frame, times):
    """
    Build the 3-D gWCS of a cube: pixel ``(x, y, t)`` to ``(SkyCoord, Time)``.

    Parameters
    ----------
    celestial_wcs : `astropy.wcs.WCS`
        2-D celestial FITS WCS of the frames.
    frame : `astropy.coordinates.BaseCoordinateFrame`
        The celestial frame (helioprojective, with observer and obstime).
    times : `astropy.time.Time`
        Observation time of each frame, strictly increasing.

    Returns
    -------
    `gwcs.WCS`
    """
    seconds = (times - times[0]).to_value(u.s)
    time_transform = models.Tabular1D(
        points=np.arange(times.size, dtype=float),
        lookup_table=seconds,
        method="linear",
        bounds_error=False,
        fill_value=np.nan,
        name="time",
    )
    temporal_frame = cf.TemporalFrame(
        reference_frame=times[0], axes_order=(2,), unit=(u.s,), axes_names=("time",), name="time"
    )
    return _cube_wcs(celestial_wcs, frame, time_transform, temporal_frame, times.size)


def lag_wcs(celestial_wcs, frame, lags):
    """
    Build the 3-D gWCS of a cross-correlation cube: pixel ``(x, y, k)`` to ``(SkyCoord, lag)``.

    Parameters
    ----------
    celestial_wcs : `astropy.wcs.WCS`
        2-D celestial FITS WCS of the frames.
    frame : `astropy.coordinates.BaseCoordinateFrame`
        The celestial frame.
    lags : `~astropy.units.Quantity`
        Evenly spaced lags, one per plane of the cube.

    Returns
    -------
    `gwcs.WCS`
    """
    seconds = lags.to_value(u.s)
    step = seconds[1] - seconds[0] if seconds.size > 1 else 1.0
    lag_transform = models.Linear1D(slope=step, intercept=seconds[0], name="lag")
    lag_frame = cf.CoordinateFrame(
        naxes=1, axes_type=("TIME",), axes_order=(2,), unit=(u.s,), axes_names=("lag",),
        axis_physical_types=("custom:time.lag",), name="lag",
    )
    return _cube_wcs(celestial_wcs, frame, lag_transform, lag_frame, seconds.size)


def _cube_wcs(celestial_wcs, frame, third_transform, third_frame, third_size):
    """A gWCS of the celestial axes of ``celestial_wcs`` and a third, separable axis."""
    celestial_frame = cf.CelestialFrame(
        axes_order=(0, 1),
        reference_frame=frame,
        unit=(u.deg, u.deg),
        axes_names=("helioprojective longitude", "helioprojective latitude"),
        axis_physical_types=("custom:pos.helioprojective.lon", "custom:pos.helioprojective.lat"),
        name="helioprojective",
    )
    pixel_frame = cf.CoordinateFrame(
        naxes=3, axes_type=("PIXEL",) * 3, axes_order=(0, 1, 2), unit=(u.pix,) * 3,
        axes_names=("x", "y", third_frame.axes_names[0]), name="pixel",
    )
    world_frame = cf.CompositeFrame([celestial_frame, third_frame], name="world")
    transform = _celestial_transform(celestial_wcs) & third_transform
    wcs = gwcs.WCS([(pixel_frame, transform), (world_frame, None)])
    wcs.pixel_shape = (*celestial_wcs.pixel_shape, third_size)
    return wcs


def resample_celestial_wcs(celestial_wcs, y_item=slice(None), x_item=slice(None)):
    r"""
    The 2-D celestial FITS WCS of the pixels ``[y_item, x_item]`` of ``celestial_wcs``.

    A slice ``start:stop:step`` of pixel axis :math:`j` maps new pixel :math:`p'` (0-based)
    to old pixel :math:`p = \mathrm{start} + s_j p' + (s_j - 1)/2`: the centre of a bin of
    :math:`s_j` pixels, as a rebin by :math:`s_j` makes it. In FITS terms
    :math:`\mathrm{CRPIX}'_j = (\mathrm{CRPIX}_j - \mathrm{start} - 1/2)/s_j + 1/2` and the
    linear part :math:`\mathrm{CDELT}\,\mathrm{PC}` gets its column :math:`j` times
    :math:`s_j`, written back as ``CDELT`` (row norms) and ``PC``, so that unequal steps on a
    rolled image stay exact.

    Parameters
    ----------
    celestial_wcs : `astropy.wcs.WCS`
        2-D, with ``pixel_shape`` set.
    y_item, x_item : slice
        Slices of the array axes (rows, columns); steps positive.

    Returns
    -------
    `astropy.wcs.WCS`
        A new WCS, ``pixel_shape`` that of the slice.
    """
    nx, ny = celestial_wcs.pixel_shape
    ranges = [range(n)[item] for n, item in ((nx, x_item), (ny, y_item))]
    steps = np.array([r.step for r in ranges], dtype=float)
    if (steps <= 0).any():
        raise ValueError("a cube's spatial axes cannot be reversed (negative slice step)")
    starts = np.array([r.start if len(r) else 0 for r in ranges], dtype=float)
    result = celestial_wcs.deepcopy()
    result.wcs.crpix = (celestial_wcs.wcs.crpix - starts - 0.5) / steps + 0.5
    if (steps != 1).any():
        linear = celestial_wcs.wcs.get_pc() * celestial_wcs.wcs.get_cdelt()[:, np.newaxis] * steps
        cdelt = np.hypot(linear[:, 0], linear[:, 1])
        if celestial_wcs.wcs.has_cd():
            result.wcs.cd = linear
        else:
            result.wcs.cdelt, result.wcs.pc = cdelt, linear / cdelt[:, np.newaxis]
    result.wcs.set()
    result.pixel_shape = (len(ranges[0]), len(ranges[1]))
    return result


def tangent_plane_wcs(wcs, shape):
    """
    A 2-D TAN FITS WCS matching the celestial axes of any 3-D APE-14 WCS at frame 0.

    The tangent point is the world coordinate of the central pixel; the world
    coordinates of a grid of pixels, projected on that plane, are fitted by the affine
    map of a FITS WCS, ``(x, y)_plane = CDELT PC (p - CRPIX)``, by linear least squares.
    For a TAN source the residual is of second order in the field's angular size
    (under 1e-6 pixel for a full solar disk).

    Parameters
    ----------
    wcs : APE-14 WCS
        Pixel axes ``(x, y, t)``; world axes with a celestial pair.
    shape : tuple of int
        ``(ny, nx)``.

    Returns
    -------
    wcs : `astropy.wcs.WCS`
    frame : `astropy.coordinates.BaseCoordinateFrame`
        The celestial frame of ``wcs``.
    """
    ny, nx = shape
    pixel_y, pixel_x = (g.ravel() for g in np.mgrid[0 : ny : max(ny // 8, 1), 0 : nx : max(nx // 8, 1)])
    centre = np.array([(nx - 1) / 2, (ny - 1) / 2])
    x, y = np.r_[centre[0], pixel_x], np.r_[centre[1], pixel_y]
    skycoord = wcs.pixel_to_world(x, y, np.zeros(x.size))[0]
    lon = skycoord.spherical.lon.to_value(u.deg)
    lat = skycoord.spherical.lat.to_value(u.deg)
    to_plane = models.RotateCelestial2Native(lon[0], lat[0], 180) | models.Sky2Pix_TAN()
    plane = np.stack(to_plane(lon[1:], lat[1:]), axis=1)
    offsets = np.stack([pixel_x, pixel_y], axis=1) - centre
    cd = np.linalg.lstsq(offsets, plane, rcond=None)[0].T
    result = WCS(naxis=2)
    result.wcs.ctype = [f"{name}-TAN" for name in ("HPLN", "HPLT")]
    result.wcs.cunit = ["deg", "deg"]
    result.wcs.crval = lon[0], lat[0]
    result.wcs.crpix = centre + 1
    result.wcs.cdelt = np.hypot(cd[:, 0], cd[:, 1])
    result.wcs.pc = cd / result.wcs.cdelt[:, np.newaxis]
    result.wcs.set()
    result.pixel_shape = (nx, ny)
    return result, skycoord.frame

"""
Cube metadata to `sunpy.map.GenericMap`: frame maps, averages and result maps.
"""
import astropy.units as u
import dask.array as da
import numpy as np
import sunpy.map
from astropy.nddata import StdDevUncertainty
from matplotlib.colors import LogNorm, Normalize
from sunpy.map.header_helper import get_observer_meta
from sunpy.util.metadata import MetaDict

__all__ = [
    "header_map", "celestial_header", "frame_header", "cube_header", "pair_header", "timelag_map",
    "correlation_map", "uncertainty_map", "significance_map",
]

#: Keywords describing the celestial WCS, replaced as a whole when the WCS changes.
_WCS_KEYWORDS = (
    "CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2", "CDELT1", "CDELT2", "CUNIT1", "CUNIT2", "CTYPE1", "CTYPE2",
    "CROTA1", "CROTA2", "PC1_1", "PC1_2", "PC2_1", "PC2_2", "CD1_1", "CD1_2", "CD2_1", "CD2_2",
    "LONPOLE", "LATPOLE", "NAXIS1", "NAXIS2",
)


def header_map(header, shape):
    """
    A data-less (lazy zeros) `~sunpy.map.GenericMap` with ``header``.

    Used to read a header exactly as sunpy reads it (coordinate frame, observer, WCS,
    unit, wavelength, exposure time), without touching any pixel.

    Parameters
    ----------
    header : dict-like
    shape : tuple of int
        ``(ny, nx)``.

    Returns
    -------
    `~sunpy.map.GenericMap`
        The instrument's map class (e.g. `~sunpy.map.sources.AIAMap`); a plain GenericMap
        for a header without ``WAVELNTH``, which some instrument classes cannot read.
    """
    data, meta = da.zeros(shape, chunks=shape, dtype="uint8"), MetaDict(dict(header))
    if "wavelnth" not in meta:
        return sunpy.map.GenericMap(data, meta)
    return sunpy.map.Map(data, meta)


def celestial_header(celestial_wcs):
    """
    FITS keywords of a 2-D celestial WCS, helioprojective angles in arcsec as AIA writes them.

    Parameters
    ----------
    celestial_wcs : `astropy.wcs.WCS`

    Returns
    -------
    dict
    """
    header = celestial_wcs.to_header()
    keywords = {key: header[key] for key in _WCS_KEYWORDS if key in header}
    for axis in (1, 2):
        unit = u.Unit(keywords.get(f"CUNIT{axis}", "deg"))
        if keywords[f"CTYPE{axis}"].startswith(("HPLN", "HPLT")) and unit != u.arcsec:
            for key in (f"CDELT{axis}", f"CRVAL{axis}"):
                keywords[key] = (keywords[key] * unit).to_value(u.arcsec)
            keywords[f"CUNIT{axis}"] = "arcsec"
    return keywords


def frame_header(header, celestial_wcs, updates=None):
    """
    A copy of a frame's header with its celestial WCS replaced and other keywords updated.

    Parameters
    ----------
    header : dict-like
    celestial_wcs : `astropy.wcs.WCS`
    updates : dict, optional
        Keywords to set (a value of ``None`` removes the keyword); case-insensitive.

    Returns
    -------
    `~sunpy.util.metadata.MetaDict`
    """
    new = MetaDict({key: value for key, value in dict(header).items() if key.upper() not in _WCS_KEYWORDS})
    new.update(celestial_header(celestial_wcs))
    for key, value in (updates or {}).items():
        if value is None:
            new.pop(key, None)
        else:
            new[key] = value
    return new


def cube_header(cube):
    """
    The part of a result map's header that comes from the cube: celestial WCS, observer, observatory.

    Parameters
    ----------
    cube : `~sunpy_timelag.TimelagCube`

    Returns
    -------
    `~sunpy.util.metadata.MetaDict`
    """
    first = cube.headers[0]
    frame = cube.wcs.pixel_to_world(0, 0, 0)[0]
    return MetaDict({
        **celestial_header(cube.celestial_wcs),
        **get_observer_meta(frame.observer, frame.rsun),
        "TELESCOP": first.get("TELESCOP", ""),
        "OBSRVTRY": first.get("OBSRVTRY", first.get("TELESCOP", "")),
    })


def pair_header(base, pair, grid, lag_bounds, normalization, content, unit):
    """
    The header of a result map of the channel pair ``(A, B)``.

    Parameters
    ----------
    base : dict-like
        The cube's part, from `cube_header`.
    pair : (int, int)
        The channels ``(A, B)``.
    grid : `~astropy.time.Time`
        The common time grid the series were correlated on.
    lag_bounds : `~astropy.units.Quantity`
        The smallest and largest lags searched.
    normalization : str
        The normalisation of the cross-correlation (``LAGNORM``), e.g. ``"global"``.
    content : str
        What the map holds, e.g. ``"time lag"``.
    unit : str
        ``BUNIT``.

    Returns
    -------
    `~sunpy.util.metadata.MetaDict`
    """
    header = MetaDict(base)
    header.update({
        "DATE-OBS": grid[0].isot,
        "DATE-END": grid[-1].isot,
        "BUNIT": unit,
        "CONTENT": f"{content} {pair[0]}-{pair[1]}",
        "CHANNELA": pair[0],
        "CHANNELB": pair[1],
        "LAGMIN": lag_bounds[0].to_value(u.s),
        "LAGMAX": lag_bounds[1].to_value(u.s),
        "CADENCE": (grid[1] - grid[0]).to(u.s).value,
        "LAGNORM": normalization,
        "COMMENT": f"{content} of channels {pair[0]} and {pair[1]}; positive lag: {pair[1]} peaks after "
                   f"{pair[0]} (Viall & Klimchuk 2012), computed by sunpy_timelag",
    })
    return header


def timelag_map(lag, base, pair, grid, lag_bounds, normalization, on_bound=None, uncertainty=None):
    """
    A time-lag `~sunpy.map.GenericMap` (unit s), drawn on a diverging colormap centred on zero.

    Parameters
    ----------
    lag : numpy.ndarray
        Lag in seconds per pixel.
    base, pair, grid, lag_bounds, normalization
        See `pair_header`.
    on_bound : numpy.ndarray of bool, optional
        Pixels whose peak sits on a lag bound, stored as the map's mask.
    uncertainty : numpy.ndarray, optional
        One-sigma uncertainty of the lag in seconds, stored as the map's
        `~astropy.nddata.StdDevUncertainty`.

    Returns
    -------
    `~sunpy.map.GenericMap`
    """
    extent = np.max(np.abs(lag_bounds.to_value(u.s)))
    header = pair_header(base, pair, grid, lag_bounds, normalization, "time lag", "s")
    return sunpy.map.GenericMap(
        lag, header, mask=on_bound,
        uncertainty=None if uncertainty is None else StdDevUncertainty(uncertainty, unit=u.s),
        plot_settings={"cmap": "RdBu_r", "norm": Normalize(vmin=-extent, vmax=extent)},
    )


def correlation_map(correlation, base, pair, grid, lag_bounds, normalization):
    """
    A peak cross-correlation `~sunpy.map.GenericMap` (dimensionless), drawn from 0 to 1.

    Parameters
    ----------
    correlation : numpy.ndarray
    base, pair, grid, lag_bounds, normalization
        See `pair_header`.

    Returns
    -------
    `~sunpy.map.GenericMap`
    """
    header = pair_header(base, pair, grid, lag_bounds, normalization, "peak cross-correlation", "")
    return sunpy.map.GenericMap(
        correlation, header, plot_settings={"cmap": "magma", "norm": Normalize(vmin=0, vmax=1)}
    )


def uncertainty_map(sigma, base, pair, grid, lag_bounds, normalization):
    """
    A `~sunpy.map.GenericMap` of the one-sigma uncertainty of the time lag (unit s), drawn from 0.

    Parameters
    ----------
    sigma : numpy.ndarray
    base, pair, grid, lag_bounds, normalization
        See `pair_header`.

    Returns
    -------
    `~sunpy.map.GenericMap`
    """
    header = pair_header(base, pair, grid, lag_bounds, normalization, "time lag uncertainty", "s")
    top = np.nanpercentile(sigma, 99) if np.isfinite(sigma).any() else 1.0
    return sunpy.map.GenericMap(sigma, header, plot_settings={"cmap": "viridis", "norm": Normalize(vmin=0, vmax=top)})


def significance_map(probability, base, pair, grid, lag_bounds, normalization):
    """
    A `~sunpy.map.GenericMap` of the chance probability of the peak correlation, drawn on a log scale.

    Parameters
    ----------
    probability : numpy.ndarray
        In [0, 1]; small values are significant.
    base, pair, grid, lag_bounds, normalization
        See `pair_header`.

    Returns
    -------
    `~sunpy.map.GenericMap`
    """
    header = pair_header(base, pair, grid, lag_bounds, normalization, "chance probability of the peak correlation", "")
    return sunpy.map.GenericMap(
        probability, header, plot_settings={"cmap": "cividis_r", "norm": LogNorm(vmin=1e-6, vmax=1, clip=True)}
    )

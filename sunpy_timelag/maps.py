"""
Cube metadata to `sunpy.map.GenericMap`: frame maps, averages and result maps.
"""
import astropy.units as u
import dask.array as da
import sunpy.map
from sunpy.util.metadata import MetaDict

__all__ = ["header_map", "celestial_header", "frame_header", "make_map"]

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
    """
    return sunpy.map.Map(da.zeros(shape, chunks=shape, dtype="uint8"), MetaDict(dict(header)))


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
    if celestial_wcs.pixel_shape is not None:
        keywords["NAXIS1"], keywords["NAXIS2"] = celestial_wcs.pixel_shape
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


def make_map(data, header, plot_settings=None):
    """
    A `~sunpy.map.GenericMap` (or instrument subclass) of ``data`` with ``header``.

    Parameters
    ----------
    data : array-like
        NumPy or Dask array (Dask stays lazy).
    header : dict-like
    plot_settings : dict, optional
        Merged into the map's default plot settings.

    Returns
    -------
    `~sunpy.map.GenericMap`
    """
    new_map = sunpy.map.Map(data, MetaDict(dict(header)))
    if plot_settings:
        new_map.plot_settings.update(plot_settings)
    return new_map

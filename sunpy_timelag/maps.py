"""
Cube metadata to `sunpy.map.GenericMap`: frame maps, averages and result maps.

A result map (`ResultMap`) says what it holds, for which channels, and how it was made: its name
reads e.g. "AIA 335-171 Å time lag 2011-02-15 00:00:00", its header gives the pair, the lags
searched, the common time grid, the options of the analysis and the preparation of the cubes
(keywords with comments, and ``HISTORY`` with the package version), and `ResultMap.save` writes
its mask and uncertainty beside the image, where `load_map` reads them back.
"""
import os
from pathlib import Path
from typing import NamedTuple

import astropy.units as u
import dask.array as da
import numpy as np
import sunpy.map
from astropy.io import fits
from astropy.nddata import InverseVariance, StdDevUncertainty, VarianceUncertainty
from matplotlib.colors import LogNorm, Normalize
from sunpy.map.header_helper import get_observer_meta
from sunpy.util.metadata import MetaDict

from ._version import __version__

__all__ = [
    "header_map", "view_map", "celestial_header", "frame_header", "cube_header", "pair_header", "ResultMap", "load_map",
    "timelag_map", "correlation_map", "uncertainty_map", "significance_map",
]

#: Keywords describing the celestial WCS, replaced as a whole when the WCS changes.
_WCS_KEYWORDS = (
    "CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2", "CDELT1", "CDELT2", "CUNIT1", "CUNIT2", "CTYPE1", "CTYPE2",
    "CROTA1", "CROTA2", "PC1_1", "PC1_2", "PC2_1", "PC2_2", "CD1_1", "CD1_2", "CD2_1", "CD2_2",
    "LONPOLE", "LATPOLE", "NAXIS1", "NAXIS2",
)


def view_map(header, celestial_wcs, observer, rsun, time, shape):
    """
    A data-less map (`header_map`) of ``header`` with ``celestial_wcs``, seen by ``observer`` at ``time``.

    ``time`` becomes the map's observation time whichever keyword its instrument reads it from
    (``T_OBS``, ``DATE-AVG``, ``DATE-OBS``): the map's coordinate frame is that of ``time``.

    Parameters
    ----------
    header : dict-like
    celestial_wcs : `astropy.wcs.WCS`
    observer : `~astropy.coordinates.SkyCoord`
    rsun : `~astropy.units.Quantity`
    time : `~astropy.time.Time`
    shape : tuple of int
        ``(ny, nx)``.

    Returns
    -------
    `~sunpy.map.GenericMap`
    """
    return header_map(frame_header(header, celestial_wcs, {
        **get_observer_meta(observer, rsun), **dict.fromkeys(("T_OBS", "DATE-AVG", "DATE-OBS"), time.isot)}), shape)


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


class _Kind(NamedTuple):
    """One kind of result map: what it holds (``BTYPE``), the short measurement of its name, its unit."""

    content: str
    measurement: str
    unit: str


#: The kinds of result maps, by the field of `~sunpy_timelag.PairMaps` that holds them.
KINDS = {
    "timelag": _Kind("time lag", "time lag", "s"),
    "correlation": _Kind("peak cross-correlation", "peak correlation", ""),
    "uncertainty": _Kind("time lag uncertainty", "lag uncertainty", "s"),
    "significance": _Kind("chance probability of the peak correlation", "chance probability", ""),
}

#: Comments of the keywords a result map adds to the cube's, written with them to FITS.
_KEYCOMMENTS = {
    "BTYPE": "what the map holds",
    "DATE-OBS": "start of the common time grid",
    "DATE-END": "end of the common time grid",
    "CHANNELA": "[Angstrom] channel A",
    "CHANNELB": "[Angstrom] channel B; positive lag: B after A",
    "LAGMIN": "[s] smallest lag searched",
    "LAGMAX": "[s] largest lag searched",
    "CADENCE": "[s] step of the common time grid",
    "LAGNORM": "correlation: global (peers) or overlap",
    "REFINE": "lags refined below the cadence (parabola)",
    "MINCORR": "lags of lower peak correlation set to NaN",
    "CUBEUNIT": "unit of the channels' data correlated",
    "XBINNING": "frame pixels binned into one map pixel, x",
    "YBINNING": "frame pixels binned into one map pixel, y",
    "DEROTREF": "frames derotated to this time",
    "DEROTMOD": "solar rotation model of the derotation",
    "CREATOR": "software that made this map",
    "VERS_SW": "version of sunpy_timelag",
}

#: The extensions `ResultMap.save` writes beside the image, by the attribute of the map they hold.
_EXTENSIONS = {"mask": "MASK", "uncertainty": "UNCERT"}

#: `astropy.nddata.NDUncertainty` classes by their ``uncertainty_type``, for `load_map`.
_UNCERTAINTIES = {cls().uncertainty_type: cls for cls in (StdDevUncertainty, VarianceUncertainty, InverseVariance)}


def cube_header(cube, *, refine=True, min_correlation=None):
    """
    The part of a result map's header that comes from the cube and the options of the analysis.

    The cube gives the celestial WCS, the observer and the observatory, the unit of its data
    (``CUBEUNIT``: ``DN / s`` once the exposures are normalised), its spatial binning relative to
    its frames (``XBINNING``, ``YBINNING``: the ratio of the cube's pixel scale to the frames'
    ``CDELT``) and, for a derotated cube, the reference time and rotation model (``DEROTREF``,
    ``DEROTMOD``).

    Parameters
    ----------
    cube : `~sunpy_timelag.TimelagCube`
    refine : bool, optional
        Whether lags are refined below the cadence (``REFINE``).
    min_correlation : float, optional
        The smallest peak correlation whose lag is kept (``MINCORR``).

    Returns
    -------
    `~sunpy.util.metadata.MetaDict`
    """
    first = cube.headers[0]
    frame = cube.wcs.pixel_to_world(0, 0, 0)[0]
    header = MetaDict({
        **celestial_header(cube.celestial_wcs),
        **get_observer_meta(frame.observer, frame.rsun),
        "TELESCOP": first.get("TELESCOP", ""),
        "OBSRVTRY": first.get("OBSRVTRY", first.get("TELESCOP", "")),
        "CUBEUNIT": "" if cube.unit is None else cube.unit.to_string(),
        "REFINE": bool(refine),
        **_binning(first, cube.celestial_wcs),
        **{key: first[key] for key in ("DEROTREF", "DEROTMOD") if key in first},
    })
    if min_correlation is not None:
        header["MINCORR"] = float(min_correlation)
    return header


def _binning(frame_header, celestial_wcs):
    """``XBINNING`` and ``YBINNING``: the cube's pixel scale in frame pixels, if whole numbers; else nothing."""
    cube = celestial_header(celestial_wcs)
    factors = {}
    for axis, key in ((1, "XBINNING"), (2, "YBINNING")):
        if f"CDELT{axis}" not in frame_header or f"CDELT{axis}" not in cube:
            return {}
        scale = u.Quantity(frame_header[f"CDELT{axis}"], frame_header.get(f"CUNIT{axis}", "arcsec"))
        ratio = cube[f"CDELT{axis}"] / scale.to_value(u.arcsec)
        if not (ratio >= 1 and abs(ratio - round(ratio)) < 1e-6):
            return {}
        factors[key] = round(ratio)
    return factors


def pair_header(base, pair, grid, lag_bounds, normalization, kind):
    """
    The header of a result map of the channel pair ``(A, B)``.

    It holds what the map is (``BTYPE``, ``CONTENT``, ``BUNIT``, ``CHANNELA``, ``CHANNELB``), the
    common time grid (``DATE-OBS``, ``DATE-END``, ``CADENCE``), the lags searched (``LAGMIN``,
    ``LAGMAX``), the normalisation (``LAGNORM``), what ``base`` says, the software (``CREATOR``,
    ``VERS_SW``) and a ``HISTORY`` of it all in words; every keyword it adds has a comment
    (``KEYCOMMENTS``) with its unit.

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
    kind : str
        What the map holds: a key of ``KINDS``, e.g. ``"timelag"``.

    Returns
    -------
    `~sunpy.util.metadata.MetaDict`
    """
    what = KINDS[kind]
    header = MetaDict(base)
    lag_min, lag_max = lag_bounds.to_value(u.s)
    cadence = (grid[1] - grid[0]).to_value(u.s)
    header.update({
        "BTYPE": what.content,
        "BUNIT": what.unit,
        "CONTENT": f"{what.content} {pair[0]}-{pair[1]}",
        "DATE-OBS": grid[0].isot,
        "DATE-END": grid[-1].isot,
        "CHANNELA": pair[0],
        "CHANNELB": pair[1],
        "LAGMIN": lag_min,
        "LAGMAX": lag_max,
        "CADENCE": cadence,
        "LAGNORM": normalization,
        "CREATOR": "sunpy_timelag",
        "VERS_SW": __version__,
        "COMMENT": f"{what.content} of channels {pair[0]} and {pair[1]}\n"
                   f"positive lag: {pair[1]} peaks after {pair[0]} (Viall & Klimchuk 2012)",
    })
    header["HISTORY"] = "\n".join(_history(header))
    header["KEYCOMMENTS"] = {key: comment for key, comment in _KEYCOMMENTS.items() if key in header}
    return header


def _history(header):
    """The ``HISTORY`` lines of a result map, each short enough for one FITS card (72 characters)."""
    yield f"sunpy_timelag {header['VERS_SW']}"
    yield f"{header['BTYPE']} of channels {header['CHANNELA']} and {header['CHANNELB']}"
    yield f"lags {header['LAGMIN']:g} to {header['LAGMAX']:g} s on a {header['CADENCE']:g} s grid"
    yield (f"normalization={header['LAGNORM']} refine={header.get('REFINE', True)} "
           f"min_correlation={header.get('MINCORR')}")
    yield f"cubes in {header.get('CUBEUNIT') or 'unknown units'}"
    if header.get("XBINNING", 1) > 1 or header.get("YBINNING", 1) > 1:
        yield f"binned {header['XBINNING']}x{header['YBINNING']} frame pixels (x, y)"
    if "DEROTREF" in header:
        yield f"derotated to {header['DEROTREF']} ({header.get('DEROTMOD', '')})"


class ResultMap(sunpy.map.GenericMap):
    """
    A map of one channel pair's result: its time lag, peak correlation, lag uncertainty or significance.

    A `~sunpy.map.GenericMap` that says what it holds: its `measurement` is e.g.
    ``"335-171 Å time lag"``, so that its ``name``, its ``repr`` and the titles of ``plot`` and
    ``peek`` read e.g. "AIA 335-171 Å time lag 2011-02-15 00:00:00"; it is drawn with the colormap
    and scale of its kind (time lags: a diverging colormap, symmetric about zero, up to the 98th
    percentile of :math:`|\tau|` over the pixels not masked; uncertainties: from zero to their 99th
    percentile): mask the unreliable pixels, and the scale follows the others. Its header gives the pair
    (``CHANNELA``, ``CHANNELB``), the lags searched (``LAGMIN``, ``LAGMAX``), the common time grid
    (``DATE-OBS``, ``DATE-END``, ``CADENCE``), the options of the analysis and the preparation of
    the cubes, with comments and a ``HISTORY`` that starts with the package version.

    `save` writes a FITS file that `sunpy.map.Map` reads as this image, with the map's mask and
    uncertainty in binary-table extensions ``MASK`` and ``UNCERT`` (which sunpy skips);
    `load_map` reads all of it back.

    Parameters
    ----------
    data, header, plot_settings, **kwargs
        As `~sunpy.map.GenericMap`; the plot settings given override those of the kind.
    """

    def __init__(self, data, header, plot_settings=None, **kwargs):
        super().__init__(data, header, **kwargs)
        self.nickname = str(self.meta.get("telescop", "")).split("/")[-1] or self.observatory
        self.plot_settings.update(self._kind_plot_settings())
        if plot_settings:
            self.plot_settings.update(plot_settings)

    @property
    def channels(self):
        """(int, int): the channel pair ``(A, B)``: a positive lag means that B peaks after A."""
        return int(self.meta["channela"]), int(self.meta["channelb"])

    @property
    def content(self):
        """str: what the map holds (``BTYPE``), e.g. ``"time lag"``."""
        return self.meta.get("btype", "")

    @property
    def measurement(self):
        """str: the pair and what the map holds, e.g. ``"335-171 Å time lag"``."""
        short = next((kind.measurement for kind in KINDS.values() if kind.content == self.content), self.content)
        return f"{self.channels[0]}-{self.channels[1]} Å {short}"

    def _kind_plot_settings(self):
        """Colormap and scale of the kind (other limits: ``plot(norm=...)``, as for sunpy's own maps)."""
        data = np.asarray(self.data, dtype=float)
        shown = np.isfinite(data)  # the pixels drawn: finite, not masked
        if self.mask is not None:
            shown &= ~np.broadcast_to(np.asarray(self.mask, bool), data.shape)
        if self.content == KINDS["timelag"].content:
            extent = max(abs(self.meta.get("lagmin", 0)), abs(self.meta.get("lagmax", 0)))
            limit = min(np.percentile(np.abs(data[shown]), 98), extent) if shown.any() else extent
            limit = limit if limit > 0 else self.meta.get("cadence", 1.0)
            return {"cmap": "RdBu_r", "norm": Normalize(vmin=-limit, vmax=limit)}
        if self.content == KINDS["uncertainty"].content:
            top = np.percentile(data[shown], 99) if shown.any() else 1.0
            return {"cmap": "viridis", "norm": Normalize(vmin=0, vmax=top if top > 0 else 1.0)}
        if self.content == KINDS["significance"].content:
            return {"cmap": "cividis_r", "norm": LogNorm(vmin=1e-6, vmax=1, clip=True)}
        return {"cmap": "magma", "norm": Normalize(vmin=0, vmax=1)}

    def save(self, filepath, filetype="auto", **kwargs):
        """
        Save the map to a file; to FITS with its mask and uncertainty.

        A FITS file holds the image as `~sunpy.map.GenericMap.save` writes it (the primary HDU,
        or an HDU of ``hdu_type``), then, where the map has them, its mask (``MASK``, boolean)
        and its uncertainty (``UNCERT``, with its unit and ``UTYPE``, the uncertainty type) as
        one-row binary tables holding the 2-D array. `load_map` reads them back;
        `sunpy.map.Map` reads the image alone. Other formats are written by
        `~sunpy.map.GenericMap.save`.

        Parameters
        ----------
        filepath : str or os.PathLike
        filetype : str, optional
            ``"auto"`` (from the extension), ``"fits"``, or another format sunpy writes.
        **kwargs
            ``hdu_type`` (an HDU class, e.g. `~astropy.io.fits.CompImageHDU`), ``overwrite`` and
            other arguments of `astropy.io.fits.HDUList.writeto`.
        """
        if not _is_fits(filepath, filetype):
            return super().save(filepath, filetype=filetype, **kwargs)
        hdu_type = kwargs.pop("hdu_type", None)
        data, header = np.asarray(self.data), self.fits_header
        hdus = [fits.PrimaryHDU(data, header)] if hdu_type is None else [fits.PrimaryHDU(), hdu_type(data, header)]
        if self.mask is not None:
            hdus.append(_table(_EXTENSIONS["mask"], np.broadcast_to(np.asarray(self.mask, bool), data.shape),
                               "pixels whose correlation peak sits on a lag bound"))
        if self.uncertainty is not None:
            unit = self.uncertainty.unit
            hdus.append(_table(_EXTENSIONS["uncertainty"], np.asarray(self.uncertainty.array),
                               "uncertainty of the image", unit=None if unit is None else unit.to_string("fits")))
            hdus[-1].header["UTYPE"] = (self.uncertainty.uncertainty_type, "astropy.nddata uncertainty type")
        fits.HDUList(hdus).writeto(Path(filepath).expanduser(), output_verify="fix", **kwargs)


# sunpy appends the notes of GenericMap to the docstring of every subclass; they describe GenericMap
# and cite with a role (sphinxcontrib-bibtex) that these docs do not load: ResultMap keeps its own.
ResultMap.__doc__ = ResultMap.__doc__.split("Notes\n-----")[0].rstrip() + "\n"


def _is_fits(filepath, filetype):
    if filetype.lower() != "auto":
        return filetype.lower() in ("fits", "fts", "fit")
    suffixes = [suffix.lower() for suffix in Path(filepath).suffixes]
    return bool(set(suffixes[-2:]) & {".fits", ".fts", ".fit"})


def _table(name, array, comment, unit=None):
    """A one-row binary-table HDU ``name`` holding the 2-D ``array`` in its column ``name``."""
    ny, nx = array.shape
    code = "L" if array.dtype == bool else "E" if array.dtype == np.float32 else "D"
    column = fits.Column(name=name, format=f"{array.size}{code}", dim=f"({nx},{ny})", unit=unit,
                         array=array.astype(array.dtype if code != "D" else float)[np.newaxis])
    hdu = fits.BinTableHDU.from_columns([column], name=name)
    hdu.header["COMMENT"] = f"{comment}: an array of the image's shape"
    return hdu


def load_map(path):
    """
    A result map saved by `ResultMap.save`, with its mask and uncertainty.

    Parameters
    ----------
    path : str or os.PathLike
        A FITS file.

    Returns
    -------
    `ResultMap`

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    ValueError
        If the file is not a result map of sunpy_timelag (its header has no ``CHANNELA`` and
        ``CHANNELB``).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no result map at {path}")
    image = sunpy.map.Map(os.fspath(path))
    if isinstance(image, list) or not {"channela", "channelb"} <= set(image.meta):
        raise ValueError(f"{path} is not a result map of sunpy_timelag: it needs one image whose header has "
                         "CHANNELA and CHANNELB")
    extras = {}
    with fits.open(path) as hdus:
        if _EXTENSIONS["mask"] in hdus:
            extras["mask"] = np.array(hdus[_EXTENSIONS["mask"]].data[_EXTENSIONS["mask"]][0], dtype=bool)
        if _EXTENSIONS["uncertainty"] in hdus:
            hdu = hdus[_EXTENSIONS["uncertainty"]]
            unit = hdu.columns[_EXTENSIONS["uncertainty"]].unit
            extras["uncertainty"] = _UNCERTAINTIES[hdu.header.get("UTYPE", "std")](
                np.array(hdu.data[_EXTENSIONS["uncertainty"]][0]), unit=unit and u.Unit(unit, format="fits"))
    return ResultMap(image.data, image.meta, **extras)


def timelag_map(lag, base, pair, grid, lag_bounds, normalization, on_bound=None, uncertainty=None):
    """
    A time-lag `ResultMap` (unit s), drawn on a diverging colormap centred on zero.

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
    `ResultMap`
    """
    header = pair_header(base, pair, grid, lag_bounds, normalization, "timelag")
    return ResultMap(lag, header, mask=on_bound,
                     uncertainty=None if uncertainty is None else StdDevUncertainty(uncertainty, unit=u.s))


def correlation_map(correlation, base, pair, grid, lag_bounds, normalization):
    """
    A peak cross-correlation `ResultMap` (dimensionless), drawn from 0 to 1.

    Parameters
    ----------
    correlation : numpy.ndarray
    base, pair, grid, lag_bounds, normalization
        See `pair_header`.

    Returns
    -------
    `ResultMap`
    """
    return ResultMap(correlation, pair_header(base, pair, grid, lag_bounds, normalization, "correlation"))


def uncertainty_map(sigma, base, pair, grid, lag_bounds, normalization):
    """
    A `ResultMap` of the one-sigma uncertainty of the time lag (unit s), drawn from 0.

    Parameters
    ----------
    sigma : numpy.ndarray
    base, pair, grid, lag_bounds, normalization
        See `pair_header`.

    Returns
    -------
    `ResultMap`
    """
    return ResultMap(sigma, pair_header(base, pair, grid, lag_bounds, normalization, "uncertainty"))


def significance_map(probability, base, pair, grid, lag_bounds, normalization):
    """
    A `ResultMap` of the chance probability of the peak correlation, drawn on a log scale.

    Parameters
    ----------
    probability : numpy.ndarray
        In [0, 1]; small values are significant.
    base, pair, grid, lag_bounds, normalization
        See `pair_header`.

    Returns
    -------
    `ResultMap`
    """
    return ResultMap(probability, pair_header(base, pair, grid, lag_bounds, normalization, "significance"))

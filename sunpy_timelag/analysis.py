"""
Channel-pair analysis of cubes: a common time grid, cross-correlations and time-lag maps.

This is the glue between `TimelagCube` and the array kernels of `sunpy_timelag.lags`:
it puts the channels on one evenly spaced grid of absolute times, converts lag bounds
to seconds, runs the kernels on the cubes' Dask arrays and wraps the results with
coordinates (`~ndcube.NDCube`, `~sunpy.map.GenericMap`).
"""
from typing import NamedTuple

import astropy.units as u
import numpy as np
from ndcube import NDCube

from . import lags
from .backend import to_numpy
from .io.wcs import lag_wcs
from .maps import correlation_map, cube_header, significance_map, timelag_map, uncertainty_map
from .results import TimelagResults

__all__ = ["HOT_TO_COOL", "PairMaps", "time_grid", "timelag_maps"]

#: AIA EUV channels from hot to cool, as ordered in the literature (Viall & Klimchuk 2012):
#: for pairs in this order a positive time lag means cooling plasma.
HOT_TO_COOL = (94, 335, 211, 193, 171, 131)

#: Largest celestial offset, in pixels, between cubes correlated pixel by pixel.
_PIXEL_TOLERANCE = 0.5


class PairMaps(NamedTuple):
    """
    The maps of one channel pair.

    Attributes
    ----------
    timelag : `~sunpy.map.GenericMap`
        Time lag in seconds (positive: the second channel peaks after the first); its
        mask marks the pixels whose peak sits on a lag bound.
    correlation : `~sunpy.map.GenericMap`
        Peak cross-correlation, dimensionless.
    uncertainty : `~sunpy.map.GenericMap` or None
        One-sigma uncertainty of the lag in seconds (``uncertainty=True``; see
        `sunpy_timelag.lagstats`), NaN where the peak sits on a lag bound.
    significance : `~sunpy.map.GenericMap` or None
        Chance probability that unrelated series with the same autocorrelations reach a
        peak correlation this high within the lag bounds (``significance=True``): small
        values are significant.
    """

    timelag: object
    correlation: object
    uncertainty: object = None
    significance: object = None


def time_grid(cubes, cadence=None):
    """
    The evenly spaced grid of absolute times over which all ``cubes`` overlap.

    Every analysis of channel pairs resamples the cubes onto this grid first (linearly, lazily):
    it is `sunpy_timelag.lags.common_time_grid` of the cubes' observation times, as absolute
    times.

    Parameters
    ----------
    cubes : list of `~sunpy_timelag.TimelagCube`
    cadence : `~astropy.units.Quantity`, optional
        Grid spacing; default the coarsest median cadence of the cubes.

    Returns
    -------
    `~astropy.time.Time`
    """
    _check_series(cubes)
    return _common_grid([cube.time for cube in cubes], cadence)


def _check_series(cubes):
    """Refuse a cube that is not a time series of at least two frames."""
    for cube in cubes:
        frames = cube.data.shape[0] if cube.data.ndim == 3 else 1
        if frames < 2:
            raise ValueError(f"the {_name(cube)} cube has {frames} frame(s): a time lag needs at least 2 frames "
                             "of each channel")


def _common_grid(times, cadence=None):
    epoch = min((time[0] for time in times), key=lambda time: time.jd)
    seconds = [(time - epoch).to_value(u.s) for time in times]
    cadence = None if cadence is None else u.Quantity(cadence, u.s).value
    return epoch + lags.common_time_grid(*seconds, cadence=cadence) * u.s


def _aligned(cubes, cadence=None):
    """
    The cubes' data resampled (lazily, linearly) on their common time grid.

    Parameters
    ----------
    cubes : list of `~sunpy_timelag.TimelagCube`
        Covering the same pixels.
    cadence : `~astropy.units.Quantity`, optional
        See `time_grid`.

    Returns
    -------
    data : list of dask.array.Array
        ``(n_grid, ny, nx)`` per cube, whole time series per chunk.
    grid : `~astropy.time.Time`
        The common grid.
    cadence : float
        Its spacing in seconds.
    """
    _check_series(cubes)
    _check_same_pixels(cubes)
    times = [cube.time for cube in cubes]
    grid = _common_grid(times, cadence)
    grid_seconds = (grid - grid[0]).to_value(u.s)
    # whole series per chunk first: interpolation then runs inside each chunk, not across one chunk per frame
    data = [
        lags.resample(cube._series_data(), (time - grid[0]).to_value(u.s), grid_seconds)
        for cube, time in zip(cubes, times, strict=True)
    ]
    return data, grid, grid_seconds[1] - grid_seconds[0]


def _check_same_pixels(cubes):
    """
    Refuse cubes whose pixel grids differ by more than `_PIXEL_TOLERANCE` pixels anywhere.

    The grids are compared through their 2-D celestial FITS WCS alone (``CTYPE``, ``CRPIX``,
    ``CDELT``, ``PC``, ``CRVAL`` and the shape): the corners and the centre of each cube are
    sent through its own projection to helioprojective angles and back through the
    reference cube's, as plain numbers. No coordinate frame is involved, so neither an
    observer a few seconds later nor a corner off the solar disk changes the answer.
    """
    reference = cubes[0]
    reference_wcs = reference.celestial_wcs
    for cube in cubes[1:]:
        if cube.data.shape[1:] != reference.data.shape[1:]:
            raise ValueError(
                f"the {_name(cube)} cube has {cube.data.shape[1:]} pixels but the {_name(reference)} cube has "
                f"{reference.data.shape[1:]}: crop them to the same region"
            )
        offset = _grid_offset(cube.celestial_wcs, reference_wcs, cube.data.shape[1:])
        if not offset <= _PIXEL_TOLERANCE:
            raise ValueError(
                f"the {_name(cube)} and {_name(reference)} cubes do not cover the same pixels (offset up to "
                f"{offset:.2f} pixels): register them and crop them identically"
            )


def _grid_offset(wcs, reference_wcs, shape):
    """
    Largest distance, in pixels of ``reference_wcs``, between the pixels of two celestial FITS WCS.

    Measured at the corners and the centre of a ``shape`` ``(ny, nx)`` image; infinite if
    the two WCS have different axis types or projections.
    """
    if list(wcs.wcs.ctype) != list(reference_wcs.wcs.ctype):
        return np.inf
    ny, nx = shape
    x, y = np.array([0, nx - 1, 0, nx - 1, (nx - 1) / 2]), np.array([0, 0, ny - 1, ny - 1, (ny - 1) / 2])
    world = wcs.pixel_to_world_values(x, y)
    world = [u.Quantity(w, unit).to_value(ref_unit) for w, unit, ref_unit in
             zip(world, wcs.wcs.cunit, reference_wcs.wcs.cunit, strict=True)]
    pixels = reference_wcs.world_to_pixel_values(*world)
    return float(np.max(np.hypot(pixels[0] - x, pixels[1] - y)))


def _name(cube):
    return cube.channel if cube.wavelength is not None else "unnamed"


def _lag_bounds_seconds(lag_bounds):
    if lag_bounds is None:
        return None
    lag_bounds = u.Quantity(lag_bounds)
    if lag_bounds.shape != (2,) or not lag_bounds.unit.is_equivalent(u.s):
        raise ValueError(f"lag_bounds must be two times, e.g. [-3, 3] * u.h; got {lag_bounds}")
    return tuple(lag_bounds.to_value(u.s))


def _searched_bounds(n_times, cadence, lag_bounds, normalization="global"):
    """The lags actually searched on ``n_times`` steps of ``cadence`` seconds, as a Quantity pair (s)."""
    window = lags.lag_window(n_times, cadence, _lag_bounds_seconds(lag_bounds), normalization)
    return u.Quantity([window[0], window[-1]]) * cadence * u.s


def _check_other(cube, other):
    """
    Refuse to pair a cube with a cube of the same channel (the ``other`` of the cube methods).

    Raises
    ------
    ValueError
        If both cubes have a wavelength and it is the same channel.
    """
    if cube.wavelength is not None and other.wavelength is not None and cube.channel == other.channel:
        raise ValueError(
            f"other is channel {other.channel}, the channel of this cube: a time lag pairs two different channels"
        )


def _cross_correlation(cube_a, cube_b, lag_bounds=None, normalization="global"):
    """
    The cross-correlation of two cubes in every pixel, as an `~ndcube.NDCube` with a lag axis.

    See `sunpy_timelag.TimelagCube.cross_correlation`.
    """
    (a, b), grid, cadence = _aligned([cube_a, cube_b])
    lag_seconds, cc = lags.cross_correlation(a, b, cadence, _lag_bounds_seconds(lag_bounds),
                                             normalization=normalization)
    wcs = lag_wcs(cube_a.celestial_wcs, cube_a.wcs.pixel_to_world(0, 0, 0)[0].frame, lag_seconds * u.s)
    meta = {
        "channels": (_name(cube_a), _name(cube_b)),
        "time_grid": grid,
        "lags": lag_seconds * u.s,
        "normalization": normalization,
    }
    return NDCube(cc, wcs=wcs, meta=meta, unit=u.dimensionless_unscaled)


def _pair_maps(cubes, index_pairs, lag_bounds=None, refine=True, min_correlation=None, normalization="global",
               uncertainty=False, significance=False):
    """
    Time-lag and correlation maps of pairs of cubes given by index, computed in one pass.

    Parameters
    ----------
    cubes : list of `~sunpy_timelag.TimelagCube`
    index_pairs : list of (int, int)
        Pairs of indices into ``cubes``.
    lag_bounds, refine, min_correlation, normalization, uncertainty, significance
        See `timelag_maps`.

    Returns
    -------
    dict
        ``(i, j)`` -> `PairMaps`.
    """
    data, grid, cadence = _aligned(cubes)
    results = lags.compute(_pair_results(data, index_pairs, cadence, lag_bounds, refine, min_correlation,
                                         normalization, uncertainty, significance))
    bounds = _searched_bounds(grid.size, cadence, lag_bounds, normalization)
    bases = {i: cube_header(cubes[i], refine=refine, min_correlation=min_correlation)
             for i in {i for i, _ in index_pairs}}
    return {(i, j): _result_maps(result, bases[i], (_name(cubes[i]), _name(cubes[j])), grid, bounds, normalization)
            for (i, j), result in results.items()}


def _pair_results(data, index_pairs, cadence, lag_bounds, refine, min_correlation, normalization, uncertainty,
                  significance):
    """The (lazy) `~sunpy_timelag.lags.TimelagResult` of each index pair of the aligned ``data`` (see `_aligned`)."""
    return lags.timelag_pairs(
        dict(enumerate(data)), index_pairs, cadence, lag_bounds=_lag_bounds_seconds(lag_bounds), refine=refine,
        min_correlation=min_correlation, normalization=normalization, uncertainty=uncertainty,
        significance=significance,
    )


def _result_maps(result, base, names, grid, bounds, normalization):
    """The `PairMaps` of one computed result; Maps hold NumPy arrays, also when the kernels ran on a GPU."""
    sigma = None if result.uncertainty is None else to_numpy(result.uncertainty)
    args = (base, names, grid, bounds, normalization)
    return PairMaps(
        timelag_map(to_numpy(result.lag), *args, on_bound=to_numpy(result.on_bound), uncertainty=sigma),
        correlation_map(to_numpy(result.correlation), *args),
        None if sigma is None else uncertainty_map(sigma, *args),
        None if result.significance is None else significance_map(to_numpy(result.significance), *args),
    )


def timelag_maps(cubes, pairs=None, lag_bounds=None, refine=True, min_correlation=None, normalization="global",
                 uncertainty=False, significance=False):
    """
    Time-lag and peak-correlation maps of many channel pairs at once.

    Every channel is put on the common time grid of all the ``cubes`` (the overlap of
    their time ranges), centred and Fourier transformed once, and reused by all the
    pairs it belongs to; all pairs are computed in one Dask pass.

    Parameters
    ----------
    cubes : list of `~sunpy_timelag.TimelagCube`
        One per channel, covering the same pixels.
    pairs : list of (int, int) or str, optional
        Channel pairs ``(A, B)`` (positive lag: B peaks after A), as tuples or strings
        such as ``"335-171"``. Default: every pair of the channels given, ordered hot to
        cool as in the literature (94, 335, 211, 193, 171, 131), e.g. the 15 pairs of
        the six AIA EUV channels.
    lag_bounds : `~astropy.units.Quantity`, optional
        Smallest and largest lag searched, e.g. ``[-3, 3] * u.h``. Default: all lags.
    refine : bool, optional
        Refine lags below the cadence (parabola through the peak; default `True`).
    min_correlation : float, optional
        Pixels whose peak correlation is below this (a number in [-1, 1]) get a NaN lag.
    normalization : {"global", "overlap"}, optional
        ``"global"`` (default): the cross-correlation of the peers (sunkit-image, Viall &
        Klimchuk 2012), z-scores over the whole series divided by N, which leans towards
        zero lag; ``"overlap"``: the Pearson correlation of the samples that each lag
        overlaps, unbiased, with lags limited to half the series.
    uncertainty : bool, optional
        Add `PairMaps.uncertainty`, the one-sigma uncertainty of the lag (s).
    significance : bool, optional
        Add `PairMaps.significance`, the chance probability of the peak correlation.

    Returns
    -------
    `~sunpy_timelag.TimelagResults`
        A dict ``(A, B)`` -> `PairMaps` ``(timelag, correlation, uncertainty, significance)``;
        the last two are `None` unless asked for. ``results.save(folder)`` writes them all,
        ``TimelagResults.load(folder)`` reads them back.

    Raises
    ------
    ValueError
        Two cubes of one channel, a cube without wavelength, a channel of ``pairs`` without
        a cube or paired with itself, cubes covering different pixels, non-overlapping time
        ranges, lag bounds selecting no lag, ``min_correlation`` outside [-1, 1], or
        ``significance`` on fewer than `~sunpy_timelag.lags.MIN_SIGNIFICANCE_TIMES` steps.
    """
    channels = _channels_of(cubes)
    pairs, index_pairs = _channel_pairs(channels, pairs)
    maps = _pair_maps(cubes, index_pairs, lag_bounds, refine, min_correlation, normalization, uncertainty, significance)
    return TimelagResults({pair: maps[index_pair] for pair, index_pair in zip(pairs, index_pairs, strict=True)})


def _channels_of(cubes):
    """
    The channel of each cube, checked: every cube has a wavelength, one cube per channel.

    Raises
    ------
    ValueError
        A cube without wavelength (named ``cubes[i]``), or two cubes of one channel.
    """
    for i, cube in enumerate(cubes):
        if cube.wavelength is None:
            raise ValueError(
                f"cubes[{i}] has no wavelength (its frames have no WAVELNTH), so its channel is unknown: "
                "set WAVELNTH in the headers of its frames, or build it with "
                "TimelagCube.from_ndcube(ndcube, wavelength=...)"
            )
    channels = [cube.channel for cube in cubes]
    if len(set(channels)) != len(channels):
        raise ValueError(f"one cube per channel is needed (timelag_maps); got channels {channels}")
    return channels


def _channel_pairs(channels, pairs):
    """
    The channel pairs (default: every pair, hot to cool) as channel tuples and as index tuples into ``channels``.

    Raises
    ------
    ValueError
        A channel of ``pairs`` without a cube, or paired with itself.
    """
    if pairs is None:
        order = sorted(channels, key=lambda c: (HOT_TO_COOL.index(c) if c in HOT_TO_COOL else len(HOT_TO_COOL), c))
        pairs = [(a, b) for i, a in enumerate(order) for b in order[i + 1 :]]
    pairs = [_parse_pair(pair) for pair in pairs]
    for pair in pairs:
        missing = [channel for channel in pair if channel not in channels]
        if missing:
            raise ValueError(f"pair {pair[0]}-{pair[1]}: no cube of channel {missing[0]} (channels: {channels})")
        if pair[0] == pair[1]:
            raise ValueError(f"pairs holds {pair[0]}-{pair[1]}, a channel paired with itself: pair two channels")
    return pairs, [(channels.index(a), channels.index(b)) for a, b in pairs]


def _parse_pair(pair):
    """
    A channel pair as a tuple of ints, from ``(335, 171)`` or ``"335-171"``.

    Raises
    ------
    ValueError
        If ``pair`` is not two channels.
    """
    values = pair.split("-") if isinstance(pair, str) else list(pair)
    try:
        first, second = (int(value) for value in values)
    except (TypeError, ValueError):
        raise ValueError(f"a channel pair is two channels such as (335, 171) or '335-171'; got {pair!r}") from None
    return first, second

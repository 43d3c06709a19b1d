r"""
Time-resolved lags: time-lag maps in sliding windows of the observation.

The channels are put on their common time grid once (`~sunpy_timelag.time_grid`);
each window is then a run of :math:`W` consecutive grid steps, starting every :math:`S`
steps, analysed exactly as `~sunpy_timelag.timelag_maps` analyses a whole observation
(the series centred, normalised and correlated within the window). All windows and
pairs are computed in one Dask pass, and the cost is that of one pass per window.
"""
import math
from typing import NamedTuple

import astropy.units as u
import numpy as np
from ndcube import NDCube

from . import analysis, lags
from .backend import to_numpy
from .io.wcs import timelag_wcs

__all__ = ["WindowedMaps", "windowed_timelag_maps"]


class WindowedMaps(NamedTuple):
    """
    The maps of one channel pair in every window, each an `~ndcube.NDCube` ``(window, y, x)``.

    The cubes' time axis gives the centre of each window and their celestial axes those of
    the first cube of the pair; ``meta`` holds the pair (``channels``), the start and end of
    each window (``window_start``, ``window_end``), ``window``, ``step``, ``cadence``,
    ``lag_bounds`` (the lags searched) and ``normalization``.

    Attributes
    ----------
    timelag : `~ndcube.NDCube`
        Time lag in seconds; its mask marks the peaks on a lag bound.
    correlation : `~ndcube.NDCube`
        Peak cross-correlation.
    uncertainty : `~ndcube.NDCube` or None
        One-sigma uncertainty of the lag in seconds (``uncertainty=True``).
    significance : `~ndcube.NDCube` or None
        Chance probability of the peak correlation (``significance=True``).
    """

    timelag: object
    correlation: object
    uncertainty: object = None
    significance: object = None


def windowed_timelag_maps(cubes, window, step=None, pairs=None, lag_bounds=None, refine=True, min_correlation=None,
                          normalization="global", uncertainty=False, significance=False):
    """
    Time-lag and peak-correlation maps of channel pairs in sliding windows of the observation.

    Parameters
    ----------
    cubes : list of `~sunpy_timelag.TimelagCube`
        One per channel, covering the same pixels (see `~sunpy_timelag.timelag_maps`).
    window : `~astropy.units.Quantity`
        Length of a window, e.g. ``2 * u.h``: ``round(window / cadence)`` steps of the
        common time grid, at least 3 and at most the whole grid.
    step : `~astropy.units.Quantity`, optional
        Time between the starts of two windows, rounded to whole steps of the grid;
        default half the window. Windows that would run past the end of the grid are
        left out.
    pairs, lag_bounds, refine, min_correlation, normalization, uncertainty, significance
        As in `~sunpy_timelag.timelag_maps`, applied to each window (the lag window with
        ``normalization="overlap"`` is limited to half the window).

    Returns
    -------
    dict
        ``(A, B)`` -> `WindowedMaps`, whose NDCubes ``(window, y, x)`` have a time axis
        giving the window centres.

    Raises
    ------
    ValueError
        A ``window`` longer than the common time grid or shorter than three of its steps,
        a ``step`` shorter than one step, or any error of `~sunpy_timelag.timelag_maps`.
    """
    channels = analysis._channels_of(cubes)
    pairs, index_pairs = analysis._channel_pairs(channels, pairs)
    data, grid, cadence = analysis._aligned(cubes)
    length = _steps(window, cadence, "window")
    if length < 3:
        raise ValueError(f"window {window} holds {length} step(s) of the {cadence:g} s cadence; at least 3 are needed")
    if length > grid.size:
        raise ValueError(
            f"window {window} ({length} steps of {cadence:g} s) is longer than the data: the channels overlap on "
            f"{grid.size} steps ({(grid[-1] - grid[0]).to(u.h):.3f} from {grid[0].isot})"
        )
    stride = max(1, length // 2) if step is None else _steps(step, cadence, "step")
    if stride < 1:
        raise ValueError(f"step {step} is shorter than one step of the {cadence:g} s cadence")
    starts = _window_starts(grid.size, length, stride)
    lazy = {}
    for w, start in enumerate(starts):
        results = analysis._pair_results([x[start : start + length] for x in data], index_pairs, cadence,
                                         lag_bounds, refine, min_correlation, normalization, uncertainty, significance)
        lazy.update({(w, index_pair): result for index_pair, result in results.items()})
    computed = lags.compute(lazy)

    centres = grid[starts] + (length - 1) / 2 * cadence * u.s
    frame = cubes[0].wcs.pixel_to_world(0, 0, 0)[0].frame
    meta = {
        "window_start": grid[starts], "window_end": grid[starts + length - 1], "window": length * cadence * u.s,
        "step": stride * cadence * u.s, "cadence": cadence * u.s, "normalization": normalization,
        "lag_bounds": analysis._searched_bounds(length, cadence, lag_bounds, normalization),
    }
    maps = {}
    for pair, (i, j) in zip(pairs, index_pairs, strict=True):
        wcs = timelag_wcs(cubes[i].celestial_wcs, frame, centres)
        stacked = {field: _stack(computed, (i, j), starts, field)
                   for field in ("lag", "correlation", "on_bound", "uncertainty", "significance")}
        pair_meta = {**meta, "channels": pair}

        def cube(field, unit, mask=None, wcs=wcs, stacked=stacked, pair_meta=pair_meta):
            return None if stacked[field] is None else NDCube(stacked[field], wcs=wcs, unit=unit, mask=mask,
                                                              meta=dict(pair_meta))

        maps[pair] = WindowedMaps(cube("lag", u.s, mask=stacked["on_bound"]),
                                  cube("correlation", u.dimensionless_unscaled), cube("uncertainty", u.s),
                                  cube("significance", u.dimensionless_unscaled))
    return maps


def _window_starts(n_times, length, stride):
    """
    First grid step of each window of ``length`` steps, every ``stride`` steps, that fits ``n_times`` steps.

    Returns
    -------
    numpy.ndarray
    """
    return np.arange(0, n_times - length + 1, stride)


def _steps(duration, cadence, argument):
    """Whole steps of ``cadence`` seconds in a duration, or a ValueError naming ``argument``."""
    try:
        seconds = u.Quantity(duration).to_value(u.s)
    except (TypeError, u.UnitsError):
        raise ValueError(f"{argument} must be a duration such as 2 * u.h, got {duration!r}") from None
    if np.ndim(seconds) != 0 or not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{argument} must be one positive duration, got {duration!r}")
    return round(seconds / cadence)


def _stack(computed, index_pair, starts, field):
    """The ``field`` of the pair of cubes ``index_pair`` in every window as a NumPy array (window, y, x), or None."""
    values = [getattr(computed[w, index_pair], field) for w in range(len(starts))]
    return None if values[0] is None else np.stack([to_numpy(value) for value in values])

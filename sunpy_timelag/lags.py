r"""
Pure array kernels of the time-lag engine.

Every function here takes and returns plain arrays — NumPy, CuPy, or Dask
arrays of either — with **time on axis 0** and any trailing spatial shape.
Times are float seconds relative to any epoch, lag bounds are floats in
seconds; nothing here knows about sunpy, ndcube or astropy.

For two series :math:`a, b` on a common, evenly spaced grid of :math:`N`
samples (cadence :math:`\Delta t`) the cross-correlation at the lag
:math:`\tau = k\,\Delta t` is, as in Viall & Klimchuk (2012) and
`sunkit_image.time_lag`,

.. math::

    C_{AB}(k) = \frac{1}{N}\sum_t \tilde a(t)\,\tilde b(t + k),
    \qquad \tilde x = \frac{x - \bar x}{\sigma_x},

with population standard deviations and zero outside the series, so that a
positive lag means that :math:`b` peaks after :math:`a`. The time lag is the
:math:`\tau` that maximises :math:`C_{AB}` within the lag bounds and the peak
correlation is that maximum.

This ``normalization="global"`` (the default, the peers' definition) leans towards
zero lag: the products of the series' offsets from their global means over the
overlap, and the :math:`1/N` whatever the overlap, add a tilt to :math:`C_{AB}`.
``normalization="overlap"`` is instead the Pearson correlation of the :math:`N - |k|`
samples that each lag overlaps, without that bias (`sunpy_timelag.lagstats`); lags
whose overlap holds fewer than half the samples are then not searched, their
correlations being too noisy to compete. The kernels can also give a one-sigma
uncertainty of the lag and the chance probability of the peak correlation
(``uncertainty=True``, ``significance=True``), from the same transforms; the
estimators are described in `sunpy_timelag.lagstats`.

How it is computed
------------------
Writing :math:`a' = a - \bar a` and :math:`b' = b - \bar b`,
:math:`C_{AB}(k) = \sum_t a'(t)\, b'(t+k) / (\lVert a'\rVert \lVert b'\rVert)`, and the
sum is the inverse real FFT of :math:`\overline{\hat a'}\,\hat b'` with both
series zero-padded to a length :math:`L`. The circular correlation of length
:math:`L` equals the linear one for every lag :math:`k` with
:math:`L \ge N + |k|` (the aliased lag :math:`k \mp L` then lies outside
:math:`\pm(N-1)`), so the transform is only as long as the lag window needs,
``scipy.fft.next_fast_len(N + max|k|)``, instead of the :math:`2N - 1` used by
sunkit-image. Pixels are processed in blocks small enough to stay in cache;
each channel is centred (in float64) and transformed once per block, and the
peak search runs on each block right after its inverse transform, so the
full correlation cube is never built when only maps are wanted. Dask inputs
are rechunked to the whole time axis and run block by block with
`dask.array.map_blocks` (any scheduler, ``dask.distributed`` included).

Invalid pixels
--------------
A pixel whose series is constant (standard deviation at most
``1e-12 * |mean|``, or a few rounding errors of a float32 input: a constant
series interpolated in single precision is constant only to ~1e-7) or
contains a NaN in either channel gets a NaN lag and a NaN correlation.
Eager (NumPy/CuPy) calls issue one `TimelagWarning` counting them; with Dask the warning is issued by `compute` (or
`TimelagResult.compute`) once the maps are known, because chunks run silently
and, on a cluster, in other processes.
"""

import functools
import itertools
import math
import os
import warnings
from typing import Any, NamedTuple

import dask
import dask.array as da
import numpy as np
import scipy.fft

from . import lagstats
from .backend import array_module, inverse_real_fft, real_fft

__all__ = [
    "NORMALIZATIONS",
    "MIN_SIGNIFICANCE_TIMES",
    "TimelagWarning",
    "TimelagResult",
    "common_time_grid",
    "resample",
    "lag_window",
    "fft_length",
    "cross_correlation",
    "timelag",
    "timelag_pairs",
    "compute",
    "time_contiguous",
    "series_chunks",
]

#: A series whose standard deviation is at most this fraction of its mean magnitude is constant
#: (or at most `_CONSTANT_ULPS` rounding errors of its floating-point dtype, if more).
_CONSTANT_RTOL = 1e-12
_CONSTANT_ULPS = 8
#: Two times closer than this fraction of the cadence are the same time.
_TIME_RTOL = 1e-6
#: Working-set bytes of one block of pixels (cache-sized on the CPU, large on a GPU).
_BLOCK_BYTES = {"numpy": 2**22, "cupy": 2**28}
#: Largest and smallest bytes of one chunk of whole time series (`series_chunks`).
_CHUNK_BYTES = (2**28, 2**24)
#: The definitions of the cross-correlation: the peers' (global z-scores, 1/N) and the Pearson
#: correlation of the overlapping samples.
NORMALIZATIONS = ("global", "overlap")
#: Fewest time steps for which a significance is given (the normal approximation of its null).
MIN_SIGNIFICANCE_TIMES = 20


class TimelagWarning(UserWarning):
    """Some pixels are constant or contain NaN; their lag and correlation are NaN."""


class TimelagResult(NamedTuple):
    """
    Time lag and peak correlation of one channel pair, per pixel.

    Attributes
    ----------
    lag : array
        Time lag in seconds (float64); NaN for invalid pixels and for pixels
        whose correlation is below ``min_correlation``.
    correlation : array
        Peak cross-correlation (float64), the discrete maximum of
        :math:`C_{AB}` within the lag bounds (never the interpolated vertex);
        NaN for invalid pixels.
    on_bound : array
        Boolean; `True` where the peak sits on a lag bound, i.e. the true peak
        may lie outside the window and the lag is a lower bound of its size.
    uncertainty : array or None
        One-sigma uncertainty of the lag in seconds (float64), NaN on a bound or
        where the peak is not a maximum; `None` unless asked for
        (`sunpy_timelag.lagstats`).
    significance : array or None
        Chance probability of a peak correlation at least this high between
        unrelated series with the same autocorrelations (float64); `None`
        unless asked for.
    """

    lag: Any
    correlation: Any
    on_bound: Any
    uncertainty: Any = None
    significance: Any = None

    def compute(self, **kwargs):
        """
        Compute lazy fields in one pass and warn once about invalid pixels.

        See `compute`.
        """
        return compute(self, **kwargs)


# ----------------------------------------------------------------------------- time grids


def common_time_grid(*times, cadence=None):
    """
    An evenly spaced time grid covering the overlap of several series.

    Parameters
    ----------
    *times : array-like
        One strictly increasing 1-D array of times (float seconds, any common
        epoch) per series.
    cadence : float, optional
        Spacing of the grid in seconds. Default: the coarsest of the median
        cadences of the inputs.

    Returns
    -------
    numpy.ndarray
        ``start + cadence * arange(n)``, where ``start`` is the latest first
        time and ``n`` the number of steps that fit before the earliest last
        time, so that every series can be interpolated onto it.

    Raises
    ------
    ValueError
        If the time ranges do not overlap or the overlap holds fewer than 3
        grid points.
    """
    if not times:
        raise ValueError("common_time_grid needs at least one array of times")
    times = [_check_times(t, f"times[{i}]") for i, t in enumerate(times)]
    start = max(t[0] for t in times)
    stop = min(t[-1] for t in times)
    if stop <= start:
        raise ValueError(f"the time ranges do not overlap (latest start {start} s >= earliest end {stop} s)")
    if cadence is None:
        cadence = max(np.median(np.diff(t)) for t in times)
    cadence = _check_cadence(cadence)
    n_times = math.floor((stop - start) / cadence + _TIME_RTOL) + 1
    if n_times < 3:
        raise ValueError(
            f"the overlap of the time ranges ({stop - start} s) holds {n_times} steps of cadence "
            f"{cadence} s; at least 3 are needed"
        )
    return start + cadence * np.arange(n_times)


def resample(data, times, new_times):
    r"""
    Linear interpolation of ``data`` along axis 0 from ``times`` to ``new_times``.

    .. math::

        d(t') = (1 - w)\, d_i + w\, d_{i+1}, \qquad
        w = \frac{t' - t_i}{t_{i+1} - t_i}, \quad t_i \le t' \le t_{i+1}.

    Parameters
    ----------
    data : array
        NumPy, CuPy or Dask array of shape ``(len(times), ...)``.
    times : array-like
        Strictly increasing times (s) of the frames of ``data``.
    new_times : array-like
        Strictly increasing times (s) to interpolate to, within the range of
        ``times``.

    Returns
    -------
    array
        Of shape ``(len(new_times), ...)`` and the array type of ``data``
        (lazy for Dask: each new frame is built from the two neighbouring
        frames, so one-chunk-per-frame inputs are never loaded whole). When
        ``new_times`` equals ``times`` (to a millionth of a cadence) ``data``
        itself is returned, and when it is a contiguous run of ``times`` the
        matching slice; no interpolation happens in either case.

    Raises
    ------
    ValueError
        If ``new_times`` leaves the range of ``times`` or ``data`` does not
        have one frame per time.
    """
    times = _check_times(times, "times")
    new_times = _check_times(new_times, "new_times", min_size=1)
    if data.shape[0] != times.size:
        raise ValueError(f"data has {data.shape[0]} frames along axis 0 but times has {times.size}")
    tol = _TIME_RTOL * np.median(np.diff(times))
    start = int(np.searchsorted(times, new_times[0] - tol))
    stop = start + new_times.size
    if stop <= times.size and np.allclose(times[start:stop], new_times, rtol=0, atol=tol):
        return data if new_times.size == times.size else data[start:stop]
    if new_times[0] < times[0] - tol or new_times[-1] > times[-1] + tol:
        raise ValueError(
            f"new_times [{new_times[0]}, {new_times[-1]}] s leave the range of times "
            f"[{times[0]}, {times[-1]}] s; interpolation does not extrapolate"
        )
    lower = np.clip(np.searchsorted(times, new_times, side="right") - 1, 0, times.size - 2)
    weight = np.clip((new_times - times[lower]) / (times[lower + 1] - times[lower]), 0, 1)
    weight = weight.astype(np.result_type(data.dtype, np.float32)).reshape((-1,) + (1,) * (data.ndim - 1))
    if isinstance(data, da.Array) and data.numblocks[0] == 1:  # whole series: one task per block, fusable
        return data.map_blocks(_interpolate, lower, weight, chunks=((new_times.size,),) + data.chunks[1:],
                               dtype=weight.dtype)
    return _interpolate(data, lower, weight)


def _interpolate(data, lower, weight):
    """``(1 - weight) data[lower] + weight data[lower + 1]``, ``weight`` a NumPy array broadcast along axis 0."""
    weight = array_module(data).asarray(weight)
    return data[lower] * (1 - weight) + data[lower + 1] * weight


# ----------------------------------------------------------------------------- lag window


def lag_window(n_times, cadence, lag_bounds=None, normalization="global"):
    """
    The integer lags (in samples) that lie within the lag bounds.

    Parameters
    ----------
    n_times : int
        Number of time steps :math:`N` of the series (at least 3).
    cadence : float
        Spacing of the time grid in seconds.
    lag_bounds : (float, float), optional
        Smallest and largest lag in seconds, inclusive (a millionth of a
        cadence of slack absorbs rounding). Default: all lags,
        :math:`\\pm(N - 1)` samples; bounds beyond that are clipped to it.
    normalization : {"global", "overlap"}, optional
        With ``"overlap"`` the lags are at most :math:`\\lfloor N/2 \\rfloor`
        samples (an overlap of at least half the series), by default and as a
        clip of ``lag_bounds``.

    Returns
    -------
    numpy.ndarray
        Ascending consecutive integers :math:`k`; the lags in seconds are
        ``k * cadence``.

    Raises
    ------
    ValueError
        If ``lag_bounds`` is not two numbers, is reversed, or selects no lag.
    """
    _check_n_times(n_times)
    cadence = _check_cadence(cadence)
    k_max = n_times // 2 if _check_normalization(normalization) == "overlap" else n_times - 1
    if lag_bounds is None:
        return np.arange(-k_max, k_max + 1)
    low, high = _check_bounds(lag_bounds)
    first = math.ceil(np.clip(low / cadence, -n_times, n_times) - _TIME_RTOL)
    last = math.floor(np.clip(high / cadence, -n_times, n_times) + _TIME_RTOL)
    first, last = max(first, -k_max), min(last, k_max)
    if first > last:
        raise ValueError(
            f"lag_bounds ({low}, {high}) s select no lag: lags are multiples of the cadence {cadence} s "
            f"within +-{k_max * cadence} s"
        )
    return np.arange(first, last + 1)


def fft_length(n_times, lags):
    """
    The shortest fast FFT length giving the linear correlation at ``lags``.

    Parameters
    ----------
    n_times : int
        Number of time steps :math:`N`.
    lags : numpy.ndarray
        Integer lags (samples), as from `lag_window`.

    Returns
    -------
    int
        ``scipy.fft.next_fast_len(N + max|k|)``: a circular correlation of
        this length has no wrap-around at any of ``lags``.
    """
    reach = max(int(lags[-1]), -int(lags[0]), 0)
    return scipy.fft.next_fast_len(n_times + reach, real=True)


# ----------------------------------------------------------------------------- public kernels


def cross_correlation(a, b, cadence, lag_bounds=None, dtype=np.float64, normalization="global"):
    """
    The cross-correlation of two series at every lag in the bounds.

    Parameters
    ----------
    a, b : array
        NumPy, CuPy or Dask arrays of the same shape ``(N, ...)``, time on
        axis 0, on the same evenly spaced grid (see `resample`).
    cadence : float
        Spacing of the time grid in seconds.
    lag_bounds : (float, float), optional
        Smallest and largest lag in seconds (see `lag_window`).
    dtype : {numpy.float64, numpy.float32}, optional
        Precision of the transforms and of ``cc``.
    normalization : {"global", "overlap"}, optional
        :math:`C_{AB}` (default), or the Pearson correlation of the samples
        each lag overlaps (`sunpy_timelag.lagstats`).

    Returns
    -------
    lags : numpy.ndarray
        The lags in seconds, ``lag_window(...) * cadence``.
    cc : array
        Of shape ``(len(lags), ...)`` and the array type of ``a`` (lazy for
        Dask); NaN for constant or NaN pixels. A NumPy/CuPy call warns once
        (`TimelagWarning`) about them.
    """
    arrays = _check_series({"a": a, "b": b})
    dtype = _check_dtype(dtype)
    lags = lag_window(arrays[0].shape[0], cadence, lag_bounds, normalization)
    kernel = functools.partial(_cross_correlation_block, lags=lags, dtype=dtype, normalization=normalization)
    cc = _map_time_blocks(kernel, arrays, lags.size, dtype)
    if not isinstance(cc, da.Array):
        _warn_invalid(cc[0])
    return lags * _check_cadence(cadence), cc


def timelag(a, b, cadence, lag_bounds=None, refine=True, min_correlation=None, dtype=np.float64,
            normalization="global", uncertainty=False, significance=False):
    r"""
    Time lag and peak correlation of two series in every pixel, in one pass.

    The lag is :math:`\tau_{AB} = \Delta t\, \mathrm{argmax}_k\, C_{AB}(k)`
    within the lag bounds (positive: ``b`` peaks after ``a``) and the peak
    correlation is :math:`\max_k C_{AB}(k)`.

    With ``refine=True`` the lag is refined below the cadence by the vertex of
    the parabola through the peak :math:`C_0` and its neighbours
    :math:`C_{\pm 1}`,

    .. math::

        \delta = \frac{C_{-1} - C_{+1}}{2\,(C_{-1} - 2C_0 + C_{+1})}
        \in [-\tfrac12, \tfrac12], \qquad \tau = (k_{\max} + \delta)\,\Delta t,

    except on a lag bound, where the discrete lag is kept. The correlation is
    always the discrete maximum (the vertex height is an extrapolation that
    can exceed 1). With ``refine=False`` lag and correlation equal
    ``sunkit_image.time_lag.time_lag`` and ``max_cross_correlation``.

    The refined lag locates the maximum of :math:`C_{AB}` itself, and
    :math:`C_{AB}` (global means, :math:`1/N` whatever the overlap) leans
    towards zero lag: for two Gaussian pulses 6 samples wide the maximum sits
    0.02 (300-sample series) to 0.07 (150 samples) samples short of the true
    delay, and for pulses :math:`e^{-(t/700\,\mathrm{s})^2}` over a baseline of a
    fifth of their height, sampled every 60 s for 2 h, 16.6 s (0.28 samples)
    short. ``normalization="overlap"`` removes that bias.

    Parameters
    ----------
    a, b : array
        NumPy, CuPy or Dask arrays of the same shape ``(N, ...)``, time on
        axis 0, on the same evenly spaced grid (see `resample`).
    cadence : float
        Spacing of the time grid in seconds.
    lag_bounds : (float, float), optional
        Smallest and largest lag in seconds (see `lag_window`).
    refine : bool, optional
        Sub-cadence refinement of the lag (default `True`).
    min_correlation : float, optional
        Pixels whose peak correlation is below this (a number in [-1, 1]) get a
        NaN lag.
    dtype : {numpy.float64, numpy.float32}, optional
        Precision of the transforms. float32 is faster; its peak correlations
        differ from float64 by ~1e-7 and its lags only where two lags are
        within ~1e-6 in correlation.
    normalization : {"global", "overlap"}, optional
        :math:`C_{AB}` (default, the peers' definition), or the Pearson
        correlation of the samples each lag overlaps (unbiased, lags limited to
        half the series; `sunpy_timelag.lagstats`).
    uncertainty : bool, optional
        Also give the one-sigma uncertainty of the lag (seconds) that the noise
        of the series causes. With ``refine=False`` the rounding to the cadence,
        :math:`\Delta t / \sqrt{12}`, is added in quadrature.
    significance : bool, optional
        Also give the chance probability of the peak correlation between
        unrelated series with the same autocorrelations (needs at least
        `MIN_SIGNIFICANCE_TIMES` time steps).

    Returns
    -------
    TimelagResult
        ``(lag, correlation, on_bound, uncertainty, significance)``, each of the
        spatial shape and array type of ``a`` (lazy for Dask; compute them with
        `TimelagResult.compute`, which also issues the warning); the last two
        are `None` unless asked for.

    Warns
    -----
    TimelagWarning
        Once, counting the constant or NaN pixels (NumPy/CuPy inputs).
    """
    return timelag_pairs(
        {"a": a, "b": b},
        [("a", "b")],
        cadence,
        lag_bounds=lag_bounds,
        refine=refine,
        min_correlation=min_correlation,
        dtype=dtype,
        normalization=normalization,
        uncertainty=uncertainty,
        significance=significance,
    )[("a", "b")]


def timelag_pairs(series, pairs, cadence, lag_bounds=None, refine=True, min_correlation=None, dtype=np.float64,
                  normalization="global", uncertainty=False, significance=False):
    """
    `timelag` for many channel pairs at once, transforming each channel once.

    Parameters
    ----------
    series : mapping
        Channel key -> array of shape ``(N, ...)`` (NumPy, CuPy or Dask), all
        on the same evenly spaced grid.
    pairs : iterable of (key, key) or None
        The pairs ``(A, B)`` to correlate (positive lag: ``B`` after ``A``), of
        two different keys. Default: every pair of keys in the order of
        ``series`` (``itertools.combinations``); with channels ordered hot to
        cool these are the hot-to-cool pairs.
    cadence, lag_bounds, refine, min_correlation, dtype, normalization, uncertainty, significance
        As in `timelag`.

    Returns
    -------
    dict
        ``(A, B)`` -> `TimelagResult`. With Dask every result comes from one
        graph in which each channel is centred and transformed once per
        spatial chunk; compute them together with `compute`.

    Raises
    ------
    ValueError
        Bad ``pairs``, ``min_correlation``, ``normalization`` or lag bounds, series
        of different shapes, or ``significance`` with fewer than
        `MIN_SIGNIFICANCE_TIMES` time steps.

    Warns
    -----
    TimelagWarning
        Once, counting the pixels that are invalid in any pair (NumPy/CuPy).
    """
    pairs = _check_pairs(series, pairs)
    min_correlation = _check_min_correlation(min_correlation)
    keys = list(dict.fromkeys(key for pair in pairs for key in pair))
    arrays = _check_series({key: series[key] for key in keys})
    dtype = _check_dtype(dtype)
    cadence = _check_cadence(cadence)
    n_times = arrays[0].shape[0]
    if significance and n_times < MIN_SIGNIFICANCE_TIMES:
        raise ValueError(
            f"significance needs series of at least {MIN_SIGNIFICANCE_TIMES} time steps, got {n_times}: "
            "use a longer series (or window), or significance=False"
        )
    lags = lag_window(n_times, cadence, lag_bounds, normalization)
    index_pairs = [(keys.index(key_a), keys.index(key_b)) for key_a, key_b in pairs]
    fields = _fields(uncertainty, significance)
    kernel = functools.partial(
        _timelag_block, pairs=index_pairs, lags=lags, cadence=cadence, refine=refine, dtype=dtype,
        normalization=normalization, fields=fields,
    )
    n = len(fields)
    maps = _map_time_blocks(kernel, arrays, n * len(pairs), np.float64)
    results = {pair: _result(maps[n * i : n * i + n], fields, min_correlation) for i, pair in enumerate(pairs)}
    if not isinstance(maps, da.Array):
        _warn_invalid(*(result.correlation for result in results.values()))
    return results


def compute(results, **kwargs):
    """
    Compute lazy time-lag results in one pass and warn once about invalid pixels.

    Parameters
    ----------
    results : TimelagResult or mapping of them
        As returned by `timelag` or `timelag_pairs`.
    **kwargs
        Passed to `dask.compute` (e.g. ``scheduler=``).

    Returns
    -------
    TimelagResult or dict
        The same structure holding NumPy (or CuPy) arrays.

    Warns
    -----
    TimelagWarning
        Once, if any pixel is constant or NaN in any of the results.
    """
    (computed,) = dask.compute(results, **kwargs)
    values = [computed] if isinstance(computed, TimelagResult) else list(computed.values())
    _warn_invalid(*(result.correlation for result in values))
    return computed


def _warn_invalid(*correlations):
    """
    Issue one `TimelagWarning` counting the pixels that are NaN in any map.

    Parameters
    ----------
    *correlations : array
        Computed correlation maps of the same shape (NaN marks a constant or
        NaN pixel).

    Returns
    -------
    int
        The number of invalid pixels.
    """
    xp = array_module(correlations[0])
    invalid = functools.reduce(xp.logical_or, (xp.isnan(c) for c in correlations))
    count = int(invalid.sum())
    if count:
        warnings.warn(
            f"{count} of {invalid.size} pixels are constant or contain NaN; their time lag and correlation are NaN",
            TimelagWarning,
            stacklevel=3,
        )
    return count


# ----------------------------------------------------------------------------- block kernels


def _fields(uncertainty, significance):
    """The per-pair output rows of `_timelag_block`, in order."""
    return ("lag", "correlation", "on_bound") + ("uncertainty",) * bool(uncertainty) + \
        ("significance",) * bool(significance)


def _timelag_block(*channels, pairs, lags, cadence, refine, dtype, normalization, fields):
    """(N, ...) blocks of each channel -> (len(fields) * n_pairs, ...) float64, the fields of each pair."""
    xp = array_module(channels[0])
    n_times, spatial = channels[0].shape[0], channels[0].shape[1:]
    flat = [channel.reshape(n_times, -1) for channel in channels]
    n_fft = fft_length(n_times, lags)
    overlap = normalization == "overlap"
    want_bend = "uncertainty" in fields
    keep = overlap or want_bend
    out = xp.empty((len(pairs), len(fields), flat[0].shape[1]))
    n_buffers = (len(channels) + 2) * (3 if keep or "significance" in fields else 1)
    blocks = _pixel_blocks(xp, flat[0].shape[1], n_fft, n_buffers)
    work = _Workspace.of(xp, len(channels), n_times, n_fft, blocks, dtype)
    for block in blocks:
        buffers = work.views(block.stop - block.start)
        prepared = [_spectrum(f[:, block], padded, spectrum, buffers.scratch, keep)
                    for f, padded, spectrum in zip(flat, buffers.padded, buffers.spectra, strict=True)]
        moments, powers = {}, {}
        for pair_out, (i, j) in zip(out, pairs, strict=True):
            a, b = prepared[i], prepared[j]
            corr = _correlation(a, b, buffers)
            norm = a.norm * b.norm
            if overlap:
                for key, first in ((i, True), (j, False)):
                    if (key, first) not in moments:
                        moments[key, first] = lagstats.overlap_moments(
                            lagstats.prefix_sums(prepared[key].centred), lags, n_times, first)
                peak_lag, peak, on_bound, bend, shift = _overlap_peak(
                    corr, moments[i, True], moments[j, False], lags, n_times, norm, dtype, refine, want_bend)
            else:
                peak_lag, peak, on_bound, bend, shift = _peak(corr, lags, refine, want_bend)
                peak = peak / norm
            valid = xp.isfinite(norm) & xp.isfinite(peak)
            pair_out[0, block] = xp.where(valid, peak_lag * cadence, np.nan)
            pair_out[1, block] = xp.where(valid, peak, np.nan)
            pair_out[2, block] = on_bound & valid
            row = 3
            if want_bend:
                offset = peak_lag - shift if refine else xp.zeros_like(peak_lag)
                sigma = lagstats.lag_uncertainty(a.centred, b.centred, shift, offset, bend) * cadence
                if not refine:
                    sigma = xp.sqrt(sigma**2 + cadence**2 / 12)
                pair_out[row, block] = xp.where(valid & ~on_bound, sigma, np.nan)
                row += 1
            if "significance" in fields:
                for key in (i, j):
                    if key not in powers:
                        powers[key] = xp.square(xp.abs(prepared[key].spectrum), dtype=np.float64)
                pair_out[row, block] = lagstats.peak_significance(
                    powers[i], powers[j], n_fft, norm**2, xp.where(valid, peak, np.nan), lags, n_times, normalization)
    return out.reshape((len(fields) * len(pairs),) + spatial)


def _overlap_peak(corr, moments_a, moments_b, lags, n_times, norm, dtype, refine, curvature):
    """
    `_peak` of the overlap-normalised correlation, from the circular ``corr`` and the overlap moments.

    The curvature is that of :math:`r(k)` times its normaliser at the peak, the scale of ``corr``.
    """
    xp = array_module(corr)
    window, scale = lagstats.overlap_correlation(corr[xp.asarray(lags % corr.shape[0])], moments_a, moments_b, lags,
                                                 n_times, norm, dtype)
    # a correlation below -1 never wins; undefined overlaps (constant stretches) are NaN
    lag, peak, on_bound, bend, index = _peak(xp.where(xp.isnan(window), -2.0, window), np.arange(lags.size), refine,
                                             curvature)
    if curvature:
        bend = bend * xp.take_along_axis(scale, index[None], axis=0)[0]
    return lag + float(lags[0]), xp.where(peak < -1, np.nan, peak), on_bound, bend, index + int(lags[0])


def _cross_correlation_block(a, b, lags, dtype, normalization):
    """(N, ...) blocks of two channels -> (n_lags, ...) correlation cube."""
    xp = array_module(a)
    n_times, spatial = a.shape[0], a.shape[1:]
    a, b = a.reshape(n_times, -1), b.reshape(n_times, -1)
    n_fft = fft_length(n_times, lags)
    rows = xp.asarray(lags % n_fft)
    overlap = normalization == "overlap"
    out = xp.empty((lags.size, a.shape[1]), dtype=dtype)
    blocks = _pixel_blocks(xp, a.shape[1], n_fft, 12 if overlap else 4)
    work = _Workspace.of(xp, 2, n_times, n_fft, blocks, dtype)
    for block in blocks:
        buffers = work.views(block.stop - block.start)
        first, second = (_spectrum(x[:, block], padded, spectrum, buffers.scratch, overlap)
                         for x, padded, spectrum in zip((a, b), buffers.padded, buffers.spectra, strict=True))
        corr = _correlation(first, second, buffers)
        norm = first.norm * second.norm
        if overlap:
            moments = [lagstats.overlap_moments(lagstats.prefix_sums(x.centred), lags, n_times, role)
                       for x, role in ((first, True), (second, False))]
            window = lagstats.overlap_correlation(corr[rows], *moments, lags, n_times, norm, dtype)[0]
            out[:, block] = xp.where(xp.isfinite(norm), window, np.nan)
        else:
            out[:, block] = corr[rows] / norm
    return out.reshape((lags.size,) + spatial)


def _pixel_blocks(xp, n_pixels, n_fft, n_buffers):
    """Slices of pixels whose ``n_buffers`` transforms of length ``n_fft`` fit the block budget."""
    step = max(16, _BLOCK_BYTES[xp.__name__] // (8 * n_fft * n_buffers))
    return [slice(start, min(start + step, n_pixels)) for start in range(0, n_pixels, step)]


class _Workspace(NamedTuple):
    """
    Buffers of a block kernel, allocated once per chunk and reused by every block of pixels.

    Fresh memory costs a page fault per page on first touch; a process that returns freed
    memory to the system at once (a `dask.distributed` worker does: ``MALLOC_TRIM_THRESHOLD_``)
    would pay it for every block's arrays.
    """

    padded: list  # per channel, (n_fft, width): zero-padded centred series
    spectra: list  # per channel, (n_fft // 2 + 1, width), complex: their transforms
    scratch: Any  # (n_times, width)
    product: Any  # (n_fft // 2 + 1, width), complex: a cross-spectrum
    correlation: Any  # (n_fft, width): its inverse transform, the circular cross-correlation

    @classmethod
    def of(cls, xp, n_channels, n_times, n_fft, blocks, dtype):
        """The buffers for the widest of ``blocks`` (slices of pixels)."""
        width = max((block.stop - block.start for block in blocks), default=0)
        complex_dtype = np.result_type(dtype, np.complex64)
        return cls([xp.empty((n_fft, width), dtype) for _ in range(n_channels)],
                   [xp.empty((n_fft // 2 + 1, width), complex_dtype) for _ in range(n_channels)],
                   xp.empty((n_times, width), dtype), xp.empty((n_fft // 2 + 1, width), complex_dtype),
                   xp.empty((n_fft, width), dtype))

    def views(self, width):
        """The buffers for a block of ``width`` pixels."""
        return _Workspace([p[:, :width] for p in self.padded], [s[:, :width] for s in self.spectra],
                          *(buffer[:, :width] for buffer in (self.scratch, self.product, self.correlation)))


class _Spectrum(NamedTuple):
    spectrum: Any
    norm: Any
    centred: Any


def _spectrum(x, padded, spectrum, scratch, keep=False):
    """
    Real FFT of the centred columns of ``x`` (N, pixels), zero-padded to the length of ``padded``.

    ``padded`` (n_fft, pixels), ``spectrum`` (its transform's shape) and ``scratch`` (N, pixels)
    are work buffers (see `_Workspace`). Returns the spectrum, the norm of each centred column
    (NaN where the column is constant or contains NaN) and, with ``keep``, a float64 copy of the
    centred columns. The mean is taken in float64.
    """
    xp = array_module(x)
    mean = x.mean(axis=0, dtype=np.float64)
    centred = padded[: x.shape[0]]
    padded[x.shape[0] :] = 0
    with np.errstate(invalid="ignore"):
        xp.subtract(x, mean, out=centred, casting="unsafe")
        kept = (x - mean).astype(np.float64, copy=False) if keep else None
    norm = xp.sqrt(xp.multiply(centred, centred, out=scratch).sum(axis=0, dtype=np.float64))
    rtol = max(_CONSTANT_RTOL, _CONSTANT_ULPS * np.finfo(x.dtype).eps) if x.dtype.kind == "f" else _CONSTANT_RTOL
    valid = norm > rtol * math.sqrt(x.shape[0]) * xp.abs(mean)
    norm = xp.where(valid, norm, np.nan)
    return _Spectrum(real_fft(padded, out=spectrum), norm, kept)


def _correlation(a, b, buffers):
    """The circular cross-correlation of two `_Spectrum` s (unnormalised), in ``buffers`` (a `_Workspace`)."""
    xp = array_module(a.spectrum)
    cross = xp.multiply(xp.conjugate(a.spectrum, out=buffers.product), b.spectrum, out=buffers.product)
    return inverse_real_fft(cross, buffers.correlation.shape[0], out=buffers.correlation)


def _peak(corr, lags, refine, curvature=False):
    """
    Peak of one block of circular correlations ``corr`` (n_fft, pixels) in the lag window.

    Returns, per pixel, the lag in samples (refined or not), the unnormalised
    peak value, the on-bound flag, the curvature ``C[-1] - 2 C[0] + C[+1]`` of
    the correlation at the peak (0 on a bound; `None` unless ``curvature``)
    and the integer lag of the peak.
    """
    xp = array_module(corr)
    n_fft, pixels = corr.shape[0], xp.arange(corr.shape[1])
    index = _window_argmax(corr, lags, pixels)
    rows = (index + int(lags[0])) % n_fft
    peak = corr[rows, pixels]
    on_bound = (index == 0) | (index == lags.size - 1)
    lag = index + float(lags[0])
    bend = None
    if refine or curvature:
        before, after = corr[(rows - 1) % n_fft, pixels], corr[(rows + 1) % n_fft, pixels]
        if refine:
            lag += _parabola_vertex(before, peak, after, on_bound)
        if curvature:
            bend = xp.where(on_bound, 0.0, before - 2 * peak + after)
    return lag, peak, on_bound, bend, index + int(lags[0])


def _window_argmax(corr, lags, pixels):
    """
    Index in the lag window of the maximum of each column of ``corr``.

    The window is at most two contiguous row ranges of the circular
    correlation (negative lags at the end, the others at the start); ties
    resolve to the smallest lag, as in `numpy.argmax`.
    """
    first, last = int(lags[0]), int(lags[-1])
    n_fft = corr.shape[0]
    if not first < 0 <= last:
        return corr[first % n_fft : last % n_fft + 1].argmax(axis=0)
    negative, positive = corr[n_fft + first :], corr[: last + 1]
    index_negative, index_positive = negative.argmax(axis=0), positive.argmax(axis=0)
    better = positive[index_positive, pixels] > negative[index_negative, pixels]
    return array_module(corr).where(better, index_positive - first, index_negative)


def _parabola_vertex(before, peak, after, on_bound):
    """Offset in [-0.5, 0.5] of the vertex of the parabola through three samples; 0 on a bound."""
    xp = array_module(peak)
    curvature = before - 2 * peak + after
    usable = ~on_bound & (curvature < 0)
    offset = 0.5 * (before - after) / xp.where(usable, curvature, -1)
    return xp.where(usable, xp.clip(offset, -0.5, 0.5), 0)


# ----------------------------------------------------------------------------- dask plumbing


def series_chunks(shape, dtype):
    """
    The chunks of whole time series: one along time, bands along the first spatial axis.

    A band spans the other axes whole (whole rows of an image, so that a band read from files
    uses every byte it reads once). Bands hold at most 256 MB, and are smaller (down to 16 MB)
    so that there is one per core: every core busy, and each file opened by as few tasks as that
    allows (a band read from files opens every file once).

    Parameters
    ----------
    shape : tuple of int
        ``(n_time, ...)``.
    dtype : numpy.dtype

    Returns
    -------
    tuple of tuple of int
    """
    largest, smallest = _CHUNK_BYTES
    total = math.prod(shape) * np.dtype(dtype).itemsize
    limit = int(np.clip(total / (os.cpu_count() or 1), smallest, largest))
    axes = ((-1, "auto") + (-1,) * (len(shape) - 2))[: len(shape)]
    return da.core.normalize_chunks(axes, tuple(shape), limit=limit, dtype=dtype)


def time_contiguous(array):
    """
    ``array`` (Dask) rechunked to whole series, in the chunks of `series_chunks`.

    The kernels need the whole time axis of a pixel in one chunk; rechunking once, before
    any other step (e.g. `resample`), keeps one-chunk-per-frame inputs from being
    rechunked twice.

    Parameters
    ----------
    array : dask.array.Array

    Returns
    -------
    dask.array.Array
    """
    return array.rechunk(series_chunks(array.shape, array.dtype))


def _map_time_blocks(kernel, arrays, n_out, dtype):
    """
    Apply ``kernel`` (whole time axis in, ``n_out`` rows out) to the arrays.

    NumPy/CuPy arrays go straight through; Dask arrays are rechunked to the
    whole time axis and common spatial chunks and mapped block by block.
    """
    if not any(isinstance(x, da.Array) for x in arrays):
        return kernel(*arrays)
    first = time_contiguous(da.asarray(arrays[0]))
    arrays = [first] + [da.asarray(x).rechunk(first.chunks) for x in arrays[1:]]
    meta = array_module(first).empty((0,) * first.ndim, dtype=dtype)
    return da.map_blocks(kernel, *arrays, chunks=((n_out,),) + first.chunks[1:], dtype=dtype, meta=meta)


def _result(maps, fields, min_correlation):
    """A TimelagResult from the (len(fields), ...) stack of one pair (see `_fields`)."""
    values = {field: maps[row] for row, field in enumerate(fields)}
    values["on_bound"] = values["on_bound"] > 0.5
    if min_correlation is not None:
        values["lag"] = np.where(values["correlation"] >= min_correlation, values["lag"], np.nan)
    return TimelagResult(**values)


# ----------------------------------------------------------------------------- input checks


def _check_times(times, name, min_size=2):
    times = np.asarray(times, dtype=np.float64)
    if times.ndim != 1 or times.size < min_size:
        raise ValueError(f"{name} must be a 1-D array of at least {min_size} times, got shape {times.shape}")
    if not np.all(np.isfinite(times)):
        raise ValueError(f"{name} must be finite")
    if np.any(np.diff(times) <= 0):
        raise ValueError(f"{name} must be strictly increasing")
    return times


def _check_cadence(cadence):
    cadence = float(cadence)
    if not (math.isfinite(cadence) and cadence > 0):
        raise ValueError(f"cadence must be a positive number of seconds, got {cadence}")
    return cadence


def _check_n_times(n_times):
    if n_times < 3:
        raise ValueError(f"the series need at least 3 time steps, got {n_times}")


def _check_bounds(lag_bounds):
    try:
        low, high = (float(bound) for bound in lag_bounds)
    except (TypeError, ValueError):
        raise ValueError(f"lag_bounds must be two numbers of seconds (low, high), got {lag_bounds!r}") from None
    if math.isnan(low) or math.isnan(high):
        raise ValueError(f"lag_bounds must not be NaN, got ({low}, {high})")
    if low > high:
        raise ValueError(f"lag_bounds are reversed: low {low} s > high {high} s")
    return low, high


def _check_dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    return dtype


def _check_pairs(series, pairs):
    if pairs is None:
        pairs = itertools.combinations(series, 2)
    pairs = [tuple(pair) for pair in pairs]
    if not pairs:
        raise ValueError("pairs selects no channel pair")
    for pair in pairs:
        if len(pair) != 2:
            raise ValueError(f"pairs must hold (key_a, key_b) tuples, got {pair!r}")
        unknown = [key for key in pair if key not in series]
        if unknown:
            raise ValueError(f"pairs names unknown channel(s) {unknown}; known: {list(series)}")
        if pair[0] == pair[1]:
            raise ValueError(f"pairs holds {pair!r}, a channel paired with itself: pair two different channels")
    return pairs


def _check_series(series):
    """The arrays of ``series`` (name -> array), checked for matching shapes and length."""
    arrays = [x if hasattr(x, "shape") else np.asarray(x) for x in series.values()]
    names = list(series)
    for name, x in zip(names, arrays, strict=True):
        if x.ndim < 1:
            raise ValueError(f"{name!r} must have time on axis 0, got a 0-d array")
        if x.shape[1:] != arrays[0].shape[1:]:
            raise ValueError(f"{name!r} has spatial shape {x.shape[1:]} but {names[0]!r} has {arrays[0].shape[1:]}")
        if x.shape[0] != arrays[0].shape[0]:
            raise ValueError(
                f"{name!r} has {x.shape[0]} time steps but {names[0]!r} has {arrays[0].shape[0]}; "
                "resample them onto one grid first (common_time_grid, resample)"
            )
    _check_n_times(arrays[0].shape[0])
    return arrays


def _check_min_correlation(min_correlation):
    if min_correlation is None:
        return None
    try:
        value = float(min_correlation)
    except (TypeError, ValueError):
        raise ValueError(f"min_correlation must be a number in [-1, 1], got {min_correlation!r}") from None
    if not -1 <= value <= 1:  # NaN fails too
        raise ValueError(f"min_correlation must be a number in [-1, 1], got {value}")
    return value


def _check_normalization(normalization):
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    return normalization

"""
Tests of the pure array kernels in `sunpy_timelag.lags`.
"""

import itertools
import warnings

import astropy.units as u
import dask
import dask.array as da
import numpy as np
import pytest
from sunkit_image import time_lag as sunkit

from sunpy_timelag import backend, lags

CADENCE = 12.0


def gaussian(t, centre, width):
    return np.exp(-0.5 * ((t - centre) / width) ** 2)


def random_pair(shape=(64, 6, 7), seed=0):
    rng = np.random.default_rng(seed)
    return rng.random(shape), rng.random(shape)


def structured_pair(n_times=80, shape=(5, 6), seed=1):
    """Noisy Gaussian pulses in ``a``, the same pulses delayed by random non-integer lags in ``b``."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_times)[:, None, None]
    centre = rng.uniform(20, 50, shape)
    delay = rng.uniform(-8, 8, shape)
    a = gaussian(t, centre, 4) + 0.05 * rng.standard_normal((n_times, *shape))
    b = 2 * gaussian(t, centre + delay, 5) + 1 + 0.05 * rng.standard_normal((n_times, *shape))
    return a, b


def sunkit_reference(a, b, bounds):
    times = np.arange(a.shape[0]) * CADENCE * u.s
    bounds = None if bounds is None else bounds * u.s
    return (
        sunkit.time_lag(a, b, times, lag_bounds=bounds).to_value(u.s),
        sunkit.max_cross_correlation(a, b, times, lag_bounds=bounds),
    )


def direct_correlation(a, b, lag_indices):
    """C_AB(k) = (1/N) sum_t a~(t) b~(t + k) by brute force, for 1-D series."""
    za, zb = ((x - x.mean()) / x.std() for x in (a, b))
    full = np.correlate(zb, za, mode="full") / a.size  # index j <-> lag j - (N - 1)
    return full[np.asarray(lag_indices) + a.size - 1]


def call_quietly(func, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return func(*args, **kwargs)


# ----------------------------------------------------------------------------- sunkit-image equality

BOUNDS = [None, (-300.0, 300.0), (-240.0, -36.0), (24.0, 500.0)]


@pytest.mark.parametrize("make_pair", [random_pair, structured_pair])
@pytest.mark.parametrize("bounds", BOUNDS)
def test_refine_false_equals_sunkit(make_pair, bounds):
    a, b = make_pair()
    lag, peak = sunkit_reference(a, b, bounds)
    result = call_quietly(lags.timelag, a, b, CADENCE, lag_bounds=bounds, refine=False)
    np.testing.assert_array_equal(result.lag, lag)
    np.testing.assert_allclose(result.correlation, peak, rtol=0, atol=1e-12)


@pytest.mark.parametrize("make_pair", [random_pair, structured_pair])
@pytest.mark.parametrize("bounds", BOUNDS[:2])
def test_refine_false_equals_sunkit_dask_chunked_in_time_and_space(make_pair, bounds):
    a, b = make_pair()
    lag, peak = sunkit_reference(a, b, bounds)
    lazy = lags.timelag(
        da.from_array(a, chunks=(16, 2, 3)), da.from_array(b, chunks=(30, 5, 2)), CADENCE, bounds, refine=False
    )
    assert isinstance(lazy.lag, da.Array)
    result = call_quietly(lazy.compute, scheduler="threads")
    np.testing.assert_array_equal(result.lag, lag)
    np.testing.assert_allclose(result.correlation, peak, rtol=0, atol=1e-12)


@pytest.mark.parametrize("chunks", [None, (10, 3, 4)])
def test_cross_correlation_equals_sunkit(chunks):
    a, b = structured_pair()
    times = np.arange(a.shape[0]) * CADENCE * u.s
    all_lags = sunkit.get_lags(times).to_value(u.s)
    expected = sunkit.cross_correlation(a, b, all_lags * u.s)
    inputs = (a, b) if chunks is None else (da.from_array(a, chunks=chunks), da.from_array(b, chunks=chunks))
    lag_seconds, cc = lags.cross_correlation(*inputs, CADENCE, lag_bounds=(-120, 240))
    np.testing.assert_array_equal(lag_seconds, np.arange(-10, 21) * CADENCE)
    np.testing.assert_allclose(np.asarray(cc), expected[np.isin(all_lags, lag_seconds)], rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- FFT length, no wrap-around


@pytest.mark.parametrize("lag_range", [(-25, 25), (-30, 5), (3, 39), (-39, -12), (-39, 39)])
def test_short_fft_has_no_wrap_around(lag_range):
    """Heavy tails at both ends would alias into the window if the FFT were circular-short."""
    rng = np.random.default_rng(3)
    n_times = 40
    a = rng.random((n_times, 3))
    b = rng.random((n_times, 3))
    a[:3] += 20
    b[-3:] += 20
    b[:3] -= 15
    window = lags.lag_window(n_times, 1.0, lag_range)
    _, cc = lags.cross_correlation(a, b, 1.0, lag_range)
    for pixel in range(3):
        np.testing.assert_allclose(cc[:, pixel], direct_correlation(a[:, pixel], b[:, pixel], window), atol=1e-12)


def test_wrap_around_check_is_sensitive(monkeypatch):
    """One sample shorter than fft_length and the window is contaminated: the check above has teeth."""
    rng = np.random.default_rng(3)
    a, b = rng.random((40, 1)), rng.random((40, 1))
    a[:3] += 20
    b[-3:] += 20
    window = lags.lag_window(40, 1.0, (-25, 25))
    monkeypatch.setattr(lags, "fft_length", lambda n_times, lag_indices: 40 + 25 - 1)
    _, cc = lags.cross_correlation(a, b, 1.0, (-25, 25))
    assert not np.allclose(cc[:, 0], direct_correlation(a[:, 0], b[:, 0], window), atol=1e-6)


def test_fft_length_is_fast_and_no_longer_than_needed():
    assert lags.fft_length(180, lags.lag_window(180, 120.0, (-10800, 10800))) == 270
    assert lags.fft_length(1800, lags.lag_window(1800, 12.0, (-10800, 10800))) == 2700


def is_5_smooth(n):
    """Whether ``n`` has no prime factor above 5 (the lengths real FFTs are fast at)."""
    for p in (2, 3, 5):
        while n % p == 0:
            n //= p
    return n == 1


@pytest.mark.parametrize(("n_times", "bounds"), [(37, None), (97, (-96, 96)), (180, (-90, 90)), (50, (3, 20)),
                                                 (64, (-45, -2)), (301, (-7, 11)), (1031, (-500, 500))])
def test_fft_length_gives_the_linear_correlation_at_the_shortest_fast_length(n_times, bounds):
    window = lags.lag_window(n_times, 1.0, bounds)
    n_fft = lags.fft_length(n_times, window)
    assert is_5_smooth(n_fft)
    # the circular correlation of that length is the linear one (numpy.correlate) at every lag of the window
    a, b = np.random.default_rng(n_times).standard_normal((2, n_times))
    circular = np.fft.irfft(np.conj(np.fft.rfft(a, n_fft)) * np.fft.rfft(b, n_fft), n_fft)
    linear = np.correlate(b, a, mode="full")  # index N - 1 + k: sum_t a(t) b(t + k)
    np.testing.assert_allclose(circular[window % n_fft], linear[n_times - 1 + window], atol=1e-9)
    # a circular correlation of length L aliases lag k - L (k > 0) or k + L (k < 0) into k: any L shorter than
    # N + max|k| wraps around; no fast length between that and n_fft is left out
    reach = max(abs(int(window[0])), abs(int(window[-1])))
    assert n_fft >= n_times + reach
    assert not any(is_5_smooth(length) for length in range(n_times + reach, n_fft))


# ----------------------------------------------------------------------------- sign and sub-cadence


@pytest.mark.parametrize("refine", [False, True])
@pytest.mark.parametrize("shift", [-7, 0, 4])
def test_sign_convention_b_delayed_is_positive(shift, refine):
    t = np.arange(120.0)
    a = gaussian(t, 50, 4)[:, None]
    b = gaussian(t, 50 + shift, 4)[:, None]
    tolerance = 0.05 * CADENCE if refine else 0  # refine: the small pull of C_AB towards zero lag
    result = lags.timelag(a, b, CADENCE, refine=refine)
    np.testing.assert_allclose(result.lag, [shift * CADENCE], rtol=0, atol=tolerance)
    np.testing.assert_allclose(lags.timelag(b, a, CADENCE, refine=refine).lag, -result.lag, atol=1e-9)


def test_refined_lags_resolve_sub_cadence_shifts():
    t = np.arange(300.0)[:, None]
    shifts = np.linspace(-6.4, 6.4, 33)  # in samples, mostly non-integer, no half-integer ties
    a = np.broadcast_to(gaussian(t, 150, 6), (300, shifts.size))
    b = gaussian(t, 150 + shifts, 6)
    truth = shifts * CADENCE
    refined = lags.timelag(a, b, CADENCE).lag
    quantised = lags.timelag(a, b, CADENCE, refine=False).lag
    np.testing.assert_array_equal(quantised, np.round(shifts) * CADENCE)
    assert np.max(np.abs(refined - truth)) < 0.03 * CADENCE
    assert np.max(np.abs(quantised - truth)) == pytest.approx(0.4 * CADENCE)
    assert np.mean(np.abs(refined - truth)) < np.mean(np.abs(quantised - truth)) / 10


def test_refined_correlation_is_the_discrete_maximum():
    a, b = structured_pair()
    np.testing.assert_array_equal(
        lags.timelag(a, b, CADENCE).correlation, lags.timelag(a, b, CADENCE, refine=False).correlation
    )


def test_float32_is_close_to_float64():
    a, b = structured_pair()
    double = lags.timelag(a, b, CADENCE)
    single = lags.timelag(a, b, CADENCE, dtype=np.float32)
    np.testing.assert_allclose(single.correlation, double.correlation, atol=1e-6)
    np.testing.assert_allclose(single.lag, double.lag, atol=1e-3 * CADENCE)


# ----------------------------------------------------------------------------- time grids and resampling


def signal(t):
    """A smooth light curve: two Gaussian pulses (minutes wide) on a background."""
    return 3 + gaussian(t, 1500, 200) + 0.7 * gaussian(t, 3000, 300)


TRUE_LAG = 7 * CADENCE + 5.0  # b is a delayed by 89 s


def evenly_sampled_truth(refine):
    grid = np.arange(0, 4800, CADENCE)
    a = signal(grid)[:, None]
    b = signal(grid - TRUE_LAG)[:, None]
    return lags.timelag(a, b, CADENCE, refine=refine).lag[0]


@pytest.mark.parametrize(
    "times_b",
    [
        pytest.param(np.arange(-24, 4824, CADENCE) + 4.0, id="a few seconds apart"),
        pytest.param(np.arange(-24, 4824, CADENCE) + np.random.default_rng(5).uniform(-2, 2, 404), id="irregular"),
        pytest.param(np.delete(np.arange(-24, 4824, CADENCE), 150), id="missing frame"),
    ],
)
def test_resampled_channels_give_the_evenly_sampled_lags(times_b):
    times_a = np.arange(-24, 4824, CADENCE)
    a = signal(times_a)[:, None]
    b = signal(times_b - TRUE_LAG)[:, None]
    grid = lags.common_time_grid(times_a, times_b, cadence=CADENCE)
    a_grid, b_grid = lags.resample(a, times_a, grid), lags.resample(b, times_b, grid)
    for refine in (False, True):
        lag = lags.timelag(a_grid, b_grid, CADENCE, refine=refine).lag[0]
        assert lag == pytest.approx(evenly_sampled_truth(refine), abs=0.3)
    assert lags.timelag(a_grid, b_grid, CADENCE).lag[0] == pytest.approx(TRUE_LAG, abs=CADENCE)


def test_common_time_grid_covers_the_overlap_at_the_coarsest_cadence():
    grid = lags.common_time_grid(np.arange(0, 100, 12.0), np.arange(3, 200, 24.0))
    np.testing.assert_allclose(grid, 3 + 24 * np.arange(4))
    np.testing.assert_allclose(lags.common_time_grid(np.arange(10.0), cadence=2.5), 2.5 * np.arange(4))


def test_equal_grids_are_not_resampled():
    times = np.arange(20) * CADENCE
    data = np.random.default_rng(0).random((20, 3, 2))
    assert lags.resample(data, times, times.copy()) is data
    lazy = da.from_array(data, chunks=(1, 3, 2))
    assert lags.resample(lazy, times, times) is lazy
    part = lags.resample(data, times, times[2:-3] + 1e-9)
    assert np.shares_memory(part, data)
    np.testing.assert_array_equal(part, data[2:-3])


def test_resample_interpolates_linearly_and_lazily():
    times = np.array([0.0, 10.0, 30.0, 40.0])
    data = np.array([0.0, 1.0, 3.0, -1.0])[:, None] * np.array([1.0, 2.0])
    new_times = np.array([5.0, 20.0, 35.0])
    expected = np.array([0.5, 2.0, 1.0])[:, None] * np.array([1.0, 2.0])
    np.testing.assert_allclose(lags.resample(data, times, new_times), expected)
    lazy = lags.resample(da.from_array(data, chunks=(1, 2)), times, new_times)
    assert isinstance(lazy, da.Array)
    np.testing.assert_allclose(lazy.compute(scheduler="sync"), expected)
    assert lags.resample(data.astype(np.float32), times, new_times).dtype == np.float32


def test_resample_loads_only_the_neighbouring_frames():
    loaded = []

    def load(index):
        loaded.append(index)
        return np.full((1, 3), float(index))

    frames = [da.from_delayed(dask.delayed(load)(i), shape=(1, 3), dtype=float) for i in range(10)]
    lazy = lags.resample(da.concatenate(frames), np.arange(10.0) * 12, np.arange(9.0) * 12 + 6)
    np.testing.assert_allclose(lazy[4].compute(scheduler="sync"), [4.5, 4.5, 4.5])
    assert sorted(loaded) == [4, 5]


@pytest.mark.parametrize("new_times", [np.array([-1.0, 5.0]), np.array([5.0, 41.0])])
def test_resample_refuses_to_extrapolate(new_times):
    with pytest.raises(ValueError, match="range of times"):
        lags.resample(np.zeros((4, 2)), np.array([0.0, 10.0, 30.0, 40.0]), new_times)


def test_time_grid_errors():
    with pytest.raises(ValueError, match="do not overlap"):
        lags.common_time_grid(np.arange(10.0), np.arange(20.0, 30.0))
    with pytest.raises(ValueError, match="at least 3"):
        lags.common_time_grid(np.arange(10.0), np.arange(8.0, 30.0), cadence=1.0)
    with pytest.raises(ValueError, match="strictly increasing"):
        lags.common_time_grid(np.array([0.0, 2.0, 1.0, 3.0]))
    with pytest.raises(ValueError, match="frames"):
        lags.resample(np.zeros((3, 2)), np.arange(4.0), np.arange(3.0))


# ----------------------------------------------------------------------------- lag window


def test_lag_window():
    np.testing.assert_array_equal(lags.lag_window(5, 12.0), np.arange(-4, 5))
    np.testing.assert_array_equal(lags.lag_window(50, 12.0, (-30, 24)), [-2, -1, 0, 1, 2])
    np.testing.assert_array_equal(lags.lag_window(5, 12.0, (-1e9, np.inf)), np.arange(-4, 5))
    np.testing.assert_array_equal(lags.lag_window(50, 12.0, (36, 36)), [3])


@pytest.mark.parametrize(
    ("bounds", "match"),
    [((30, -30), "reversed"), ((13, 23), "select no lag"), ((500, 600), "select no lag"), ((1,), "two numbers")],
)
def test_bad_lag_bounds(bounds, match):
    a, b = random_pair((30, 2))
    with pytest.raises(ValueError, match=match):
        lags.timelag(a, b, CADENCE, lag_bounds=bounds)


# ----------------------------------------------------------------------------- invalid pixels and flags


def test_nan_and_constant_pixels_give_nan_and_one_warning():
    a, b = structured_pair()
    a[:, 0, 0] = 7.1  # constant
    b[:, 1, 2] = 0.1  # constant, not exactly representable
    a[5, 2, 3] = np.nan
    b[:, 4, 4] = np.nan
    bad = np.zeros(a.shape[1:], bool)
    bad[0, 0] = bad[1, 2] = bad[2, 3] = bad[4, 4] = True
    with pytest.warns(lags.TimelagWarning, match="4 of 30 pixels") as record:
        result = lags.timelag(a, b, CADENCE, lag_bounds=(-100, 100))
    assert len(record) == 1
    assert np.all(np.isnan(result.lag[bad])) and np.all(np.isnan(result.correlation[bad]))
    assert np.all(np.isfinite(result.lag[~bad])) and not result.on_bound[bad].any()
    with pytest.warns(lags.TimelagWarning) as record:
        _, cc = lags.cross_correlation(a, b, CADENCE)
    assert len(record) == 1 and np.array_equal(np.isnan(cc).all(axis=0), bad)


def test_dask_invalid_pixels_warn_once_at_compute():
    a, b = structured_pair()
    a[:, 0, :] = 1.0
    lazy = call_quietly(lags.timelag, da.from_array(a, chunks=(20, 1, 2)), da.from_array(b, chunks=(20, 1, 2)), 12)
    with pytest.warns(lags.TimelagWarning, match="6 of 30") as record:
        result = lazy.compute(scheduler="threads")
    assert len(record) == 1
    assert np.isnan(result.lag[0]).all() and np.isfinite(result.lag[1:]).all()


def test_peak_on_a_bound_is_flagged_and_not_refined():
    t = np.arange(100.0)[:, None]
    a = np.broadcast_to(gaussian(t, 40, 4), (100, 2))
    b = gaussian(t, 40 + np.array([2.4, 9.6]), 4)  # the second peaks beyond the +5-sample bound
    result = lags.timelag(a, b, CADENCE, lag_bounds=(-5 * CADENCE, 5 * CADENCE))
    np.testing.assert_array_equal(result.on_bound, [False, True])
    assert result.lag[1] == 5 * CADENCE
    assert result.lag[0] == pytest.approx(2.4 * CADENCE, abs=0.05 * CADENCE)


def test_min_correlation_masks_weak_pixels():
    a, b = structured_pair()
    b[:, 0] = np.random.default_rng(9).random(b[:, 0].shape)  # noise: weak correlation
    plain = lags.timelag(a, b, CADENCE)
    masked = lags.timelag(a, b, CADENCE, min_correlation=0.5)
    weak = plain.correlation < 0.5
    assert weak[0].all() and not weak[1:].any()
    assert np.isnan(masked.lag[weak]).all()
    np.testing.assert_array_equal(masked.lag[~weak], plain.lag[~weak])
    np.testing.assert_array_equal(masked.correlation, plain.correlation)


# ----------------------------------------------------------------------------- bad input


def test_bad_inputs_name_the_argument():
    a, b = random_pair((30, 4, 5))
    with pytest.raises(ValueError, match="'b' has spatial shape"):
        lags.timelag(a, b[:, :3], CADENCE)
    with pytest.raises(ValueError, match="'b' has 29 time steps"):
        lags.timelag(a, b[1:], CADENCE)
    with pytest.raises(ValueError, match="at least 3 time steps"):
        lags.timelag(a[:2], b[:2], CADENCE)
    with pytest.raises(ValueError, match="cadence"):
        lags.timelag(a, b, -12)
    with pytest.raises(ValueError, match="dtype"):
        lags.timelag(a, b, CADENCE, dtype=np.int32)
    with pytest.raises(ValueError, match="unknown channel"):
        lags.timelag_pairs({94: a, 335: b}, [(94, 171)], CADENCE)
    with pytest.raises(ValueError, match=r"pairs holds \(335, 335\), a channel paired with itself"):
        lags.timelag_pairs({94: a, 335: b}, [(94, 335), (335, 335)], CADENCE)


@pytest.mark.parametrize("value", [1.5, -1.01, np.nan, "high"])
def test_min_correlation_outside_minus_one_to_one(value):
    a, b = random_pair((30, 2))
    with pytest.raises(ValueError, match=r"min_correlation must be a number in \[-1, 1\], got"):
        lags.timelag(a, b, CADENCE, min_correlation=value)


# ----------------------------------------------------------------------------- overlap normalisation


def delayed_pulses(delays, n_times=120, cadence=60.0, width=700.0, baseline=0.2, centre=3000.0):
    """Issue 13's example: pulses exp(-(t/width)^2) over a baseline, and the same pulses delayed."""
    t = np.arange(n_times)[:, None] * cadence + 0 * delays
    return baseline + np.exp(-(((t - centre) / width) ** 2)), baseline + np.exp(-(((t - centre - delays) / width) ** 2))


def test_global_normalisation_is_biased_and_overlap_is_not():
    delays = np.arange(-600.0, 2001.0, 100.0)
    a, b = delayed_pulses(delays)
    biased = lags.timelag(a, b, 60.0, lag_bounds=(-3000, 3000))
    unbiased = lags.timelag(a, b, 60.0, lag_bounds=(-3000, 3000), normalization="overlap")
    shortfall = np.sign(delays) * (delays - biased.lag)  # towards zero lag
    nonzero = delays != 0
    np.testing.assert_allclose(shortfall[nonzero], 16.6, atol=0.2)  # 0.28 of the cadence, every delay
    assert np.max(np.abs(unbiased.lag - delays)) < 0.25
    assert np.all(np.abs(unbiased.lag - delays)[nonzero] < 0.02 * shortfall[nonzero])


def pearson_by_brute_force(a, b, lag):
    """np.corrcoef of the samples that ``lag`` overlaps (b shifted by ``lag`` against a)."""
    n = a.size
    return np.corrcoef(a[max(0, -lag) : n - max(0, lag)], b[max(0, lag) : n - max(0, -lag)])[0, 1]


@pytest.mark.parametrize("bounds", [None, (-120.0, 240.0), (36.0, 900.0)])
@pytest.mark.parametrize("chunks", [None, (17, 2, 3)])
def test_overlap_equals_pearson_of_the_overlapping_samples(bounds, chunks):
    a, b = structured_pair(n_times=50, shape=(3, 4))
    a[:, 0, 0] += 0.3 * np.arange(50)  # a trend: the overlap means differ from the global ones
    inputs = (a, b) if chunks is None else (da.from_array(a, chunks=chunks), da.from_array(b, chunks=chunks))
    lag_seconds, cc = lags.cross_correlation(*inputs, CADENCE, lag_bounds=bounds, normalization="overlap")
    cc = np.asarray(cc)
    steps = np.rint(lag_seconds / CADENCE).astype(int)
    expected_steps = np.arange(-25, 26) if bounds is None else np.arange(-10, 21) if bounds[0] < 0 else np.arange(3, 26)
    np.testing.assert_array_equal(steps, expected_steps)  # at most half the series: |k| <= 25
    for y, x in [(0, 0), (1, 2), (2, 3)]:
        expected = [pearson_by_brute_force(a[:, y, x], b[:, y, x], k) for k in steps]
        np.testing.assert_allclose(cc[:, y, x], expected, rtol=0, atol=1e-12)
    peak = lags.timelag(*inputs, CADENCE, lag_bounds=bounds, refine=False, normalization="overlap")
    if chunks is not None:
        peak = peak.compute()
    np.testing.assert_allclose(peak.correlation, cc.max(axis=0), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(peak.lag, lag_seconds[cc.argmax(axis=0)])


def global_by_brute_force(a, b, lag):
    """The peers' correlation: sum of the z-scored a(t) b(t + lag) over the overlap, over the whole norms."""
    a, b = a - a.mean(), b - b.mean()
    n = a.size
    overlap = np.dot(a[max(0, -lag) : n - max(0, lag)], b[max(0, lag) : n - max(0, -lag)])
    return overlap / np.sqrt(np.dot(a, a) * np.dot(b, b))


@pytest.mark.parametrize("normalization", ["global", "overlap"])
def test_blocks_of_pixels_reuse_their_buffers_without_mixing(monkeypatch, normalization):
    # a budget of one block of 16 pixels: 37 pixels run as blocks of 16, 16 and 5 through the same buffers
    monkeypatch.setitem(lags._BLOCK_BYTES, "numpy", 1)
    a, b = (x[:, 0] for x in structured_pair(n_times=50, shape=(1, 37)))
    lag_seconds, cc = lags.cross_correlation(a, b, CADENCE, lag_bounds=(-120.0, 240.0), normalization=normalization)
    steps = np.rint(lag_seconds / CADENCE).astype(int)
    brute_force = global_by_brute_force if normalization == "global" else pearson_by_brute_force
    expected = np.array([[brute_force(a[:, p], b[:, p], k) for p in range(37)] for k in steps])
    np.testing.assert_allclose(cc, expected, rtol=0, atol=1e-12)
    peak = lags.timelag(a, b, CADENCE, lag_bounds=(-120.0, 240.0), refine=False, normalization=normalization)
    np.testing.assert_allclose(peak.correlation, expected.max(axis=0), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(peak.lag, lag_seconds[expected.argmax(axis=0)])


def test_no_pixels_give_empty_maps():
    lag_seconds, cc = lags.cross_correlation(np.zeros((20, 0)), np.zeros((20, 0)), CADENCE, lag_bounds=(-60, 60))
    assert cc.shape == (lag_seconds.size, 0)
    result = lags.timelag(np.zeros((20, 3, 0)), np.zeros((20, 3, 0)), CADENCE)
    assert result.lag.shape == result.correlation.shape == (3, 0)


def test_overlap_refines_its_own_peak_and_keeps_float32_close():
    a, b = structured_pair()
    lag_seconds, cc = lags.cross_correlation(a, b, CADENCE, lag_bounds=(-240, 240), normalization="overlap")
    refined = lags.timelag(a, b, CADENCE, lag_bounds=(-240, 240), normalization="overlap")
    index = cc.argmax(axis=0)
    inner = (index > 0) & (index < lag_seconds.size - 1)
    before, peak, after = (np.take_along_axis(cc, (index + d)[None].clip(0, lag_seconds.size - 1), 0)[0]
                           for d in (-1, 0, 1))
    vertex = lag_seconds[index] + CADENCE * 0.5 * (before - after) / (before - 2 * peak + after)
    np.testing.assert_allclose(refined.lag[inner], vertex[inner], atol=1e-9)
    single = lags.timelag(a, b, CADENCE, lag_bounds=(-240, 240), normalization="overlap", dtype=np.float32)
    np.testing.assert_allclose(single.correlation, refined.correlation, atol=1e-5)


def test_overlap_nan_and_constant_pixels():
    a, b = structured_pair()
    a[:, 0, 0] = 7.1
    b[3, 1, 1] = np.nan
    with pytest.warns(lags.TimelagWarning, match="2 of 30 pixels"):
        result = lags.timelag(a, b, CADENCE, normalization="overlap")
    assert np.isnan(result.lag[0, 0]) and np.isnan(result.correlation[1, 1]) and np.isfinite(result.lag[2:]).all()


def test_overlap_lag_window():
    np.testing.assert_array_equal(lags.lag_window(11, 12.0, normalization="overlap"), np.arange(-5, 6))
    np.testing.assert_array_equal(lags.lag_window(11, 12.0, (-1e9, 24), normalization="overlap"), np.arange(-5, 3))
    with pytest.raises(ValueError, match="select no lag"):
        lags.lag_window(11, 12.0, (100, 200), normalization="overlap")
    with pytest.raises(ValueError, match=r"normalization must be one of \('global', 'overlap'\), got 'pearson'"):
        lags.timelag(*structured_pair(), CADENCE, normalization="pearson")


# ----------------------------------------------------------------------------- many pairs


def six_channels(shape=(60, 4, 5)):
    rng = np.random.default_rng(11)
    t = np.arange(shape[0])[:, None, None]
    return {
        channel: gaussian(t, 20 + 3 * i + rng.uniform(0, 2, shape[1:]), 4) + 0.1 * rng.random(shape)
        for i, channel in enumerate((94, 335, 211, 193, 171, 131))
    }


@pytest.mark.parametrize("lazy", [False, True])
def test_timelag_pairs_equals_pair_by_pair(lazy):
    series = six_channels()
    if lazy:
        series = {key: da.from_array(x, chunks=(30, 2, 5)) for key, x in series.items()}
    results = lags.timelag_pairs(series, None, CADENCE, lag_bounds=(-240, 240))
    assert list(results) == list(itertools.combinations(series, 2))
    if lazy:
        results = lags.compute(results, scheduler="threads")
    for (key_a, key_b), result in results.items():
        single = lags.timelag(np.asarray(series[key_a]), np.asarray(series[key_b]), CADENCE, (-240, 240))
        for got, expected in zip(result, single, strict=True):
            np.testing.assert_array_equal(got, expected)


def test_timelag_pairs_with_nan_channel_warns_once():
    series = six_channels()
    series[171][:, 0, 0] = np.nan
    series[94][:, 1, 1] = 2.0
    with pytest.warns(lags.TimelagWarning, match="2 of 20") as record:
        lags.timelag_pairs(series, None, CADENCE)
    assert len(record) == 1


# ----------------------------------------------------------------------------- schedulers and devices


@pytest.mark.slow
def test_distributed_processes_equal_threads():
    distributed = pytest.importorskip("distributed")
    series = {key: da.from_array(x, chunks=(20, 2, 5)) for key, x in six_channels().items()}
    results = lags.timelag_pairs(series, [(335, 171), (211, 131)], CADENCE, lag_bounds=(-240, 240))
    threaded = lags.compute(results, scheduler="threads")
    with (
        distributed.LocalCluster(processes=True, n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        remote = lags.compute(results, scheduler=client)
    for pair in results:
        for got, expected in zip(remote[pair], threaded[pair], strict=True):
            np.testing.assert_array_equal(got, expected)


@pytest.mark.gpu
def test_cupy_equals_numpy():
    cupy = pytest.importorskip("cupy")
    if not backend.cupy_available():
        pytest.skip("no GPU visible to CuPy")
    a, b = structured_pair()
    for options in ({}, {"normalization": "overlap", "uncertainty": True, "significance": True}):
        expected = lags.timelag(a, b, CADENCE, (-240, 240), **options)
        on_gpu = lags.timelag(cupy.asarray(a), cupy.asarray(b), CADENCE, (-240, 240), **options)
        assert backend.is_cupy_array(on_gpu.lag)
        for got, want in zip(on_gpu, expected, strict=True):
            if want is not None:
                np.testing.assert_allclose(backend.to_numpy(got), want, atol=1e-9)
    _, cc = lags.cross_correlation(cupy.asarray(a), cupy.asarray(b), CADENCE, normalization="overlap")
    np.testing.assert_allclose(backend.to_numpy(cc), lags.cross_correlation(a, b, CADENCE, normalization="overlap")[1],
                               atol=1e-12)
    lazy = lags.timelag(da.from_array(cupy.asarray(a), chunks=(40, 3, 3)), da.from_array(cupy.asarray(b)), 12.0)
    with dask.config.set(scheduler="threads"):
        np.testing.assert_allclose(backend.to_numpy(lazy.compute().lag), lags.timelag(a, b, CADENCE).lag)

"""Figures of time-lag results: masking, colour limits and layout, checked against the synthetic truth."""
import astropy.units as u
import matplotlib
import numpy as np
import pytest

from sunpy_timelag import TimelagCube, timelag_maps
from sunpy_timelag.data import make_synthetic_observation
from sunpy_timelag.plotting import lag_limit, plot_lag_histograms, plot_pair_grid, reliable_pixels

matplotlib.use("Agg")
CHANNELS = (335, 211, 171)


@pytest.fixture(scope="module")
def observation():
    return make_synthetic_observation(channels=CHANNELS, duration=1.5 * u.h, shape=(32, 32), seed=5)


@pytest.fixture(scope="module")
def results(observation):
    cubes = [TimelagCube.from_maps(_maps(observation, c)).normalize_exposure() for c in CHANNELS]
    return timelag_maps(cubes, lag_bounds=[-40, 40] * u.min)


def _maps(observation, channel):
    import sunpy.map

    return [sunpy.map.Map(data, header) for data, header in zip(observation.data[channel],
                                                                  observation.headers[channel], strict=True)]


def test_reliable_pixels_carry_the_true_lags(results, observation):
    maps = results[335, 171]
    truth = observation.true_timelag(335, 171)
    keep = reliable_pixels(maps)
    loops = np.isfinite(truth)
    assert keep[loops].mean() > 0.9  # the loops correlate
    error = np.abs(maps.timelag.data - truth)
    assert np.median(error[keep & loops]) < 12  # within the cadence where kept
    # what is masked off the loops is noise: lags spread over the window, far from any truth
    dropped = ~keep & ~loops & np.isfinite(maps.timelag.data)
    assert np.median(np.abs(maps.timelag.data[dropped])) > 300


def test_lag_limit_follows_the_data_not_the_window(results, observation):
    limit = lag_limit(results)
    true = np.concatenate([np.abs(observation.true_timelag(a, b)) for a, b in results])
    assert abs(limit - np.nanpercentile(true, 98) * u.s) < 60 * u.s
    assert limit < 40 * u.min / 2  # the whole window would wash the real lags out


def test_pair_grid_is_a_triangle_with_the_convention(results):
    figure = plot_pair_grid(results)
    panels = {ax.get_title(): ax for ax in figure.axes if ax.get_title()}
    assert set(panels) == {"335-211", "335-171", "211-171"}
    # row A, column B on a 2 x 2 grid: 335-211 top left, 335-171 top right, 211-171 bottom right
    assert [panels[name].get_subplotspec().num1 for name in ("335-211", "335-171", "211-171")] == [0, 1, 3]
    assert "positive lag: B peaks after A" in figure.get_suptitle()
    image = panels["335-171"].get_images()[0]
    np.testing.assert_array_equal(np.ma.getmaskarray(image.get_array()), ~reliable_pixels(results[335, 171]))
    low, high = image.get_clim()
    assert low == -high == -lag_limit(results).to_value(u.s)


def test_histograms_count_the_reliable_pixels(results):
    axes = plot_lag_histograms(results)
    labels = [text.get_text() for text in axes.get_legend().get_texts()]
    assert labels[1] == f"335-171 ({reliable_pixels(results[335, 171]).sum()} px)"
    assert "positive lag: B peaks after A" in axes.get_title()

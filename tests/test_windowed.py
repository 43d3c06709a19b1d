"""Time-resolved lags (issue 13): `windowed_timelag_maps` on a synthetic observation whose loops stop half way."""
import astropy.units as u
import numpy as np
import pytest

from sunpy_timelag import time_grid, timelag_maps, windowed_timelag_maps
from sunpy_timelag.data import make_synthetic_observation
from tests.synthetic_cubes import observed_cubes, rate_cube

CHANNELS = (335, 171)
BOUNDS = [-30, 30] * u.min


@pytest.fixture(scope="module")
def observation():
    return make_synthetic_observation(channels=CHANNELS, duration=3 * u.h, shape=(24, 24), seed=4)


@pytest.fixture(scope="module")
def cubes(observation):
    """The observation's loops for the first 90 minutes; afterwards the mean image and white noise of its level."""
    rng = np.random.default_rng(0)
    cubes = []
    for channel, cube in zip(CHANNELS, observed_cubes(observation), strict=True):
        rate = np.asarray(cube.data, dtype=float)
        model = observation.model_rate(channel)
        quiet = (cube.time - cube.time[0]) > 90 * u.min
        level = (rate - model)[~quiet].std(axis=0)
        rate[quiet] = model.mean(axis=0) + level * rng.standard_normal((quiet.sum(), *level.shape))
        cubes.append(rate_cube(observation, channel, rate))
    return cubes


def test_loops_lag_in_the_windows_of_their_events_only(cubes, observation):
    windows = windowed_timelag_maps(cubes, window=1 * u.h, step=30 * u.min, lag_bounds=BOUNDS, significance=True,
                                    normalization="overlap")
    assert list(windows) == [(335, 171)]
    grid = time_grid(cubes)
    for pair, maps in windows.items():
        truth = observation.true_timelag(*pair)
        loops = np.isfinite(truth)
        centres = maps.timelag.axis_world_coords(0)[0]
        # the channels overlap on 899 steps of 12 s: four windows of 300 steps every 150
        assert maps.timelag.data.shape == (4, 24, 24) and maps.timelag.unit == u.s
        np.testing.assert_allclose((centres - grid[0]).to_value(u.min), [30, 60, 90, 120], atol=0.2)
        for w, centre in enumerate((centres - grid[0]).to(u.min)):
            error = np.abs(maps.timelag.data[w] - truth)[loops]
            significant = np.mean(maps.significance.data[w][loops] < 0.05)
            if centre < 60 * u.min:  # the window lies within the events
                assert np.median(error) < 2 and significant > 0.95
            elif centre > 110 * u.min:  # only noise: no lag, no correlation
                assert np.mean(error < 12) < 0.1 and significant < 0.15
        assert maps.timelag.meta["channels"] == pair and maps.uncertainty is None


def test_a_window_equals_the_maps_of_its_time_range(cubes):
    windows = windowed_timelag_maps(cubes, window=40 * u.min, step=50 * u.min, lag_bounds=BOUNDS,
                                    normalization="overlap", uncertainty=True)
    maps = windows[(335, 171)]
    grid = time_grid(cubes)
    start, end = maps.timelag.meta["window_start"][1], maps.timelag.meta["window_end"][1]
    assert u.isclose((end - start).to(u.s), 40 * u.min - 12 * u.s) and u.isclose((start - grid[0]).to(u.s), 50 * u.min)
    times = grid[(grid >= start - 1 * u.s) & (grid <= end + 1 * u.s)]
    whole = timelag_maps([cube.interpolate_time(times) for cube in cubes], lag_bounds=BOUNDS,
                         normalization="overlap", uncertainty=True)[(335, 171)]
    np.testing.assert_allclose(maps.timelag.data[1], whole.timelag.data, atol=1e-9)
    np.testing.assert_allclose(maps.uncertainty.data[1], whole.uncertainty.data, rtol=1e-9)
    np.testing.assert_array_equal(maps.timelag.mask[1], whole.timelag.mask)
    sky = maps.timelag.wcs.pixel_to_world(3, 4, 0)[0]
    assert sky.separation(cubes[0].wcs.pixel_to_world(3, 4, 0)[0]) < 1e-6 * u.arcsec


@pytest.mark.parametrize(("window", "step", "message"), [
    (4 * u.h, None, r"window 4.0 h \(1200 steps of 12 s\) is longer than the data"),
    (30 * u.s, None, "window 30.0 s holds 2 step"),
    (1 * u.h, 5 * u.s, r"step 5.0 s is shorter than one step"),
    (2.0, None, "window must be a duration"),
])
def test_bad_windows(cubes, window, step, message):
    with pytest.raises(ValueError, match=message):
        windowed_timelag_maps(cubes, window=window, step=step)


def test_one_window_of_the_whole_grid(cubes):
    grid = time_grid(cubes)
    whole = (grid[-1] - grid[0]).to(u.s) + 12 * u.s
    maps = windowed_timelag_maps(cubes, window=whole, lag_bounds=BOUNDS)[(335, 171)]
    assert maps.timelag.data.shape == (1, 24, 24)
    whole_maps = timelag_maps(cubes, lag_bounds=BOUNDS)[(335, 171)]
    np.testing.assert_allclose(maps.timelag.data[0], whole_maps.timelag.data, atol=1e-9)

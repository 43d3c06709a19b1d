import itertools
import os
import warnings

import astropy.units as u
import numpy as np
import pytest
import sunpy.map
from astropy.io import fits
from astropy.time import Time
from sunpy.coordinates import sun
from sunpy.map.sources import AIAMap

from sunpy_timelag.data import STANDARD_CHANNELS, SyntheticObservation, make_synthetic_observation

INSTRUMENTS = {94: "AIA_4", 131: "AIA_1", 171: "AIA_3", 193: "AIA_2", 211: "AIA_2", 335: "AIA_1"}
REQUIRED_KEYWORDS = ["SIMPLE", "BITPIX", "NAXIS1", "NAXIS2", "TELESCOP", "INSTRUME", "WAVELNTH", "WAVEUNIT",
                     "EXPTIME", "T_OBS", "DATE-OBS", "CTYPE1", "CTYPE2", "CUNIT1", "CUNIT2", "CDELT1",
                     "CDELT2", "CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2", "CROTA2", "DSUN_OBS", "HGLN_OBS",
                     "HGLT_OBS", "CRLN_OBS", "CRLT_OBS", "RSUN_REF", "RSUN_OBS", "LVL_NUM", "QUALITY",
                     "BUNIT", "PIXLUNIT"]
SHAPE = (32, 24)
N_FRAMES = 25


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    directory = tmp_path_factory.mktemp("synthetic")
    return make_synthetic_observation(directory, duration=5 * u.min, shape=SHAPE, drop_frame=True, seed=3)


@pytest.fixture(scope="module")
def long_obs():
    """Two hours of 16x16 pixels, kept in memory: long enough for time lags."""
    return make_synthetic_observation(shape=(16, 16), seed=5)


def _tobs(header):
    return Time(header["T_OBS"].rstrip("Z"))


def test_default_parameters(written):
    assert isinstance(written, SyntheticObservation)
    assert written.channels == STANDARD_CHANNELS == (94, 335, 211, 193, 171, 131)
    assert repr(written).startswith("<SyntheticObservation")
    for c in written.channels:
        n = N_FRAMES - (c == 171)
        assert written.data[c].shape == (n, *SHAPE)
        assert written.data[c].dtype == np.int16
        assert len(written.times[c]) == len(written.headers[c]) == len(written.files[c]) == n
        assert written.exposure_time[c].unit == u.s


def test_files_are_aia_maps(written):
    for c in written.channels:
        for i in (0, -1):
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                m = sunpy.map.Map(written.files[c][i])
            assert isinstance(m, AIAMap)
            assert m.wavelength == c * u.AA
            assert m.exposure_time == written.exposure_time[c][i]
            assert abs(m.reference_date - written.times[c][i]) < 1 * u.ms
            assert abs(m.date + m.exposure_time / 2 - written.times[c][i]) < 10 * u.ms
            assert m.unit == u.DN
            assert m.meta["instrume"] == INSTRUMENTS[c]
            assert m.meta["bitpix"] == 16
            np.testing.assert_array_equal(m.data, written.data[c][i])


def test_headers(written):
    for c in written.channels:
        for i in (0, len(written.files[c]) // 2):
            on_disk = fits.getheader(written.files[c][i])
            assert set(REQUIRED_KEYWORDS) <= set(on_disk)
            assert on_disk == written.headers[c][i]
            assert on_disk["T_OBS"].endswith("Z") and on_disk["T_OBS"][-4] == "."
            assert abs(_tobs(on_disk) - written.times[c][i]) < 1 * u.us
            assert on_disk["EXPTIME"] == written.exposure_time[c][i].to_value(u.s)
            assert on_disk["TELESCOP"] == "SDO/AIA" and on_disk["WAVELNTH"] == c
            assert on_disk["CUNIT1"] == on_disk["CUNIT2"] == "arcsec"
            assert on_disk["LVL_NUM"] == 1.0 and on_disk["QUALITY"] == 0
            assert on_disk["CRVAL1"] == on_disk["CRVAL2"] == 0
            assert 0 < abs(on_disk["CROTA2"]) < 1
    # Pointing jitter: a few hundredths of a pixel from frame to frame.
    crpix = np.array([[h["CRPIX1"], h["CRPIX2"]] for h in written.headers[171]])
    assert 0.005 < crpix.std(axis=0).min() and crpix.std(axis=0).max() < 0.1


def test_file_names_and_atomic_write(written):
    for c in written.channels:
        folder = written.files[c][0].parent
        assert folder.name == str(c)
        stamps = [_tobs(h).isot.replace(":", "").replace(".", "_")[:-1] for h in written.headers[c]]
        assert [f.name for f in written.files[c]] == [f"aia_synth_{c}_{s}.fits" for s in stamps]
        assert written.files[c] == sorted(written.files[c])
        assert sorted(folder.iterdir()) == written.files[c]  # nothing else, no temporary files


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        make_synthetic_observation(tmp_path, channels=(171,), duration=1 * u.min, shape=(16, 16))
    assert list((tmp_path / "171").iterdir()) == []


def test_in_memory(long_obs):
    assert long_obs.files == {c: [] for c in STANDARD_CHANNELS}
    assert len(long_obs.times[171]) == 600
    assert long_obs.model_rate(171).shape == (600, 16, 16)


def test_coordinates(written):
    m = sunpy.map.Map(written.files[171][0])
    ny, nx = SHAPE
    # The pixel grid is centred on (-400", 100") with 2.4" pixels; jitter and roll are below 0.3".
    for px, py in [((nx - 1) / 2, (ny - 1) / 2), (0, 0), (nx - 1, ny - 1)]:
        c = m.pixel_to_world(px * u.pix, py * u.pix)
        assert u.allclose(c.Tx, (-400 + 2.4 * (px - (nx - 1) / 2)) * u.arcsec, atol=0.3 * u.arcsec)
        assert u.allclose(c.Ty, (100 + 2.4 * (py - (ny - 1) / 2)) * u.arcsec, atol=0.3 * u.arcsec)
    centre = m.pixel_to_world((nx - 1) / 2 * u.pix, (ny - 1) / 2 * u.pix)
    assert u.allclose([centre.Tx, centre.Ty], [written.reference_coordinate.Tx, written.reference_coordinate.Ty],
                      atol=0.3 * u.arcsec)
    # An Earth-like observer.
    assert u.allclose(m.observer_coordinate.lat, sun.B0(m.reference_date), atol=1e-4 * u.deg)
    assert u.allclose(m.observer_coordinate.radius, sun.earth_distance(m.reference_date), rtol=1e-6)
    assert u.allclose(m.carrington_longitude, sun.L0(m.reference_date), atol=1e-3 * u.deg)
    assert u.allclose(m.rsun_obs, np.arcsin(696000 * u.km / m.dsun).to(u.arcsec), rtol=1e-6)


def test_bounding_box_holds_the_loops(written):
    m = sunpy.map.Map(written.files[171][0])
    rows, cols = np.nonzero(written.loop_mask)
    sub = m.submap(written.bottom_left, top_right=written.top_right)
    x, y = sub.world_to_pixel(m.pixel_to_world(cols * u.pix, rows * u.pix))
    assert np.all((x.value > -0.5) & (x.value < sub.data.shape[1] - 0.5))
    assert np.all((y.value > -0.5) & (y.value < sub.data.shape[0] - 0.5))
    assert sub.data.shape[0] <= np.ptp(rows) + 2 and sub.data.shape[1] <= np.ptp(cols) + 2


def test_times(written):
    start = Time("2011-02-15T00:00:00")
    for c in written.channels:
        t = written.times[c]
        steps = np.diff((t - start).to_value(u.s))
        assert np.all(steps > 0)
        assert np.allclose(steps[steps < 20], 12, atol=0.2) and steps.std() > 0.005  # jitter
        assert 0 < (t[0] - start).to_value(u.s) < 12
    assert (written.times[171][0] - start).to_value(u.s) == pytest.approx(1.34, abs=0.15)
    # The channels are not observed simultaneously.
    for a, b in itertools.combinations(written.channels, 2):
        offset = (written.times[a][:10] - written.times[b][:10]).to_value(u.s)
        assert abs(np.median(offset)) > 0.3


def test_exposure(long_obs):
    for c in long_obs.channels:
        exposure = long_obs.exposure_time[c].to_value(u.s)
        nominal = np.median(exposure)
        normal = exposure > 0.9 * nominal
        assert 1e-4 < exposure[normal].std() / nominal < 0.01
        short = exposure < 0.7 * nominal
        assert 0 < short.sum() < 0.1 * exposure.size
        # Away from the loops, raw counts drop in AEC frames, count rates do not.
        dn = long_obs.data[c][:, ~long_obs.loop_mask].mean(axis=1)
        assert dn[short].mean() < 0.7 * dn[normal].mean()
        rate = dn / exposure
        assert rate[short].mean() == pytest.approx(rate[normal].mean(), rel=0.02)


def test_drop_frame(tmp_path):
    kwargs = dict(channels=(335, 171), duration=3 * u.min, shape=(16, 16), seed=7)
    full = make_synthetic_observation(**kwargs)
    dropped = make_synthetic_observation(tmp_path, drop_frame=True, **kwargs)
    assert len(dropped.times[335]) == len(full.times[335]) == 15
    assert len(dropped.times[171]) == len(dropped.files[171]) == 14
    assert len(list((tmp_path / "171").iterdir())) == 14
    keep = np.arange(15) != 7
    assert np.all(dropped.times[171] == full.times[171][keep])
    np.testing.assert_array_equal(dropped.data[171], full.data[171][keep])
    np.testing.assert_array_equal(dropped.data[335], full.data[335])
    assert sunpy.map.Map(dropped.files[171][7]).reference_date == full.times[171][8]


def test_deterministic():
    kwargs = dict(channels=(211, 94), duration=2 * u.min, shape=(16, 16))
    a, b = make_synthetic_observation(seed=1, **kwargs), make_synthetic_observation(seed=1, **kwargs)
    c = make_synthetic_observation(seed=2, **kwargs)
    for ch in (211, 94):
        np.testing.assert_array_equal(a.data[ch], b.data[ch])
        assert np.all(a.times[ch] == b.times[ch])
        assert a.header_texts[ch] == b.header_texts[ch]
        assert not np.array_equal(a.data[ch], c.data[ch])
    np.testing.assert_array_equal(a.true_timelag(94, 211), b.true_timelag(94, 211))
    # A channel does not depend on the other channels asked for.
    single = make_synthetic_observation(seed=1, channels=(94,), duration=2 * u.min, shape=(16, 16))
    np.testing.assert_array_equal(single.data[94], a.data[94])


def test_true_timelag(long_obs):
    mask = long_obs.loop_mask
    assert mask.dtype == bool and 0 < mask.sum() < mask.size
    for a, b in itertools.combinations(STANDARD_CHANNELS, 2):  # hot -> cool
        lag = long_obs.true_timelag(a, b)
        assert lag.shape == mask.shape
        assert np.all(lag[mask] > 0) and np.all(np.isnan(lag[~mask]))
        np.testing.assert_array_equal(lag, -long_obs.true_timelag(b, a))
    lag = long_obs.true_timelag(335 * u.AA, 17.1 * u.nm)[mask]
    assert 5 * u.min < lag.min() * u.s and lag.max() * u.s > 15 * u.min
    assert np.unique(lag).size > 10  # varies across the field
    assert np.abs(lag / 12 - np.round(lag / 12)).max() > 0.1  # not multiples of the cadence
    with pytest.raises(ValueError, match="not one of the channels"):
        long_obs.true_timelag(304, 171)


def _peak_lag(a, b, step):
    """Lag (in units of ``step``) maximising C(tau) = (1/N) sum_t a(t) b(t + tau) of z-scored series."""
    a, b = (a - a.mean()) / a.std(), (b - b.mean()) / b.std()
    cc = np.correlate(b, a, "full") / a.size
    return (cc.argmax() - (a.size - 1)) * step, cc.max()


@pytest.mark.parametrize(("a", "b"), [(335, 171), (94, 131), (211, 193), (94, 335)])
def test_cross_correlation_peaks_at_truth(long_obs, a, b):
    y, x = np.unravel_index(np.argmax(long_obs.arcade.weight), long_obs.loop_mask.shape)
    truth = long_obs.true_timelag(a, b)[y, x]
    fine = Time("2011-02-15T00:00:10") + np.arange(0, 7190, 2) * u.s
    # Noise-free model on a fine grid.
    lag, peak = _peak_lag(long_obs.model_rate(a, fine)[:, y, x], long_obs.model_rate(b, fine)[:, y, x], 2)
    assert lag == pytest.approx(truth, abs=12)
    assert peak > 0.5  # less than 1: C(tau) sums over the overlap of the two series only
    # The data themselves, normalised by the exposure and resampled at their absolute times.
    seconds = [(t - fine[0]).to_value(u.s) for t in (fine, long_obs.times[a], long_obs.times[b])]
    series = [np.interp(seconds[0], s, long_obs.data[c][:, y, x] / long_obs.exposure_time[c].value)
              for s, c in zip(seconds[1:], (a, b), strict=True)]
    lag, peak = _peak_lag(*series, 2)
    assert lag == pytest.approx(truth, abs=12)
    assert peak > 0.5


def test_no_correlation_outside_loops(long_obs):
    y, x = np.argwhere(~long_obs.loop_mask)[0]
    series = [long_obs.data[c][:, y, x] / long_obs.exposure_time[c].value for c in (335, 171)]
    assert _peak_lag(*series, 12)[1] < 0.25


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(channels=(304,)), "304 is not one of the channels"),
    (dict(channels=(171, 171)), "channels must be distinct"),
    (dict(channels=()), "channels must be distinct"),
    (dict(duration=12 * u.s), "at least two frames"),
    (dict(cadence=0 * u.s), "at least two frames"),
    (dict(shape=(8, 64)), "at least 16 pixels a side"),
])
def test_invalid_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_synthetic_observation(**kwargs)

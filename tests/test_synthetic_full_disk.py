"""
The full-disk synthetic observation: files as JSOC serves them, coordinates, registration (against
aiapy), rotation with the solar surface (against sunpy), ground truth on the derotated grid, and the
frames flagged in QUALITY.
"""
import re
import warnings

import aiapy.calibrate
import astropy.units as u
import numpy as np
import pytest
import sunpy.map
from astropy.coordinates import Angle, SkyCoord
from astropy.io import fits
from astropy.time import Time
from scipy.optimize import curve_fit
from sunpy.coordinates import (
    Helioprojective,
    RotatedSunFrame,
    get_earth,
    propagate_with_solar_surface,
    sun,
)
from sunpy.map.sources import AIAMap

from sunpy_timelag import TimelagCube
from sunpy_timelag.aia import register
from sunpy_timelag.data import QUALITY_FAULTS, FullDiskObservation, make_full_disk_observation
from sunpy_timelag.data._surface import SurfaceTracker, disk_profile
from sunpy_timelag.exceptions import OutputPathError
from sunpy_timelag.lags import TimelagWarning

try:
    from aiapy.utils import check_quality_flag
except ImportError:  # aiapy < 0.11
    from aiapy.util import check_quality_flag

SMALL = dict(shape=(256, 256), plate_scale=9.6 * u.arcsec)
N_FRAMES = 20


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """Four minutes of 335 and 171 A, 256 x 256 pixels of 9.6 arcsec, two flagged frames per channel."""
    directory = tmp_path_factory.mktemp("full_disk")
    return make_full_disk_observation(directory, channels=(335, 171), duration=4 * u.min, bad_quality=2, seed=1,
                                      **SMALL)


@pytest.fixture(scope="module")
def hours():
    """Three frames of 171 A two hours apart, 4.8 arcsec pixels, in memory: the surface rotates."""
    return make_full_disk_observation(channels=(171,), duration=6 * u.h, cadence=2 * u.h, bad_quality=0)


def _map(obs, channel, index):
    if obs.data is None:
        return sunpy.map.Map(obs.files[channel][index])
    return sunpy.map.Map(obs.data[channel][index], obs.headers[channel][index])


def test_default_parameters(written):
    assert isinstance(written, FullDiskObservation)
    assert repr(written).startswith("<FullDiskObservation")
    assert written.data is None
    for c in (335, 171):
        assert len(written.times[c]) == len(written.files[c]) == len(written.exposure_time[c]) == N_FRAMES
        assert np.all(np.diff((written.times[c] - written.times[c][0]).to_value(u.s)) > 0)
    assert abs(written.reference_time - Time("2011-02-15T00:02:00")) < 1 * u.ms


def test_files_as_jsoc_serves_them(written):
    for c in written.channels:
        folder = written.files[c][0].parent
        assert sorted(folder.iterdir()) == written.files[c]  # nothing else, no staging leftovers
        for path, header in zip(written.files[c][:2], written.headers[c][:2], strict=True):
            stamp = header["T_OBS"].replace(":", "_")
            assert path.name == f"aia.lev1.{c}A_{stamp}.image_lev1.fits"
            with fits.open(path, disable_image_compression=True) as raw:
                assert len(raw) == 2 and raw[0].header["NAXIS"] == 0
                assert raw[1].header["ZCMPTYPE"] == "RICE_1" and raw[1].header["ZBITPIX"] == 16
            with fits.open(path, do_not_scale_image_data=True) as hdulist:
                assert isinstance(hdulist[1], fits.CompImageHDU) and hdulist[1].data.dtype == np.int16
                assert list(hdulist[1].header.items()) == list(header.items())
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                m = sunpy.map.Map(path)
            # As sunpy reads JSOC's files: float32, BLANK pixels NaN.
            assert isinstance(m, AIAMap) and m.data.dtype == np.float32
            assert m.wavelength == c * u.AA and m.unit == u.DN and m.meta["lvl_num"] == 1
            assert m.exposure_time == written.exposure_time[c][written.files[c].index(path)]
            assert abs(m.reference_date - written.times[c][written.files[c].index(path)]) < 1 * u.ms
            assert header["BLANK"] == -32768 and header["QUALITY"] == 0


def test_coordinates_and_disk(written):
    m = _map(written, 171, 0)
    header = written.headers[171][0]
    n = m.data.shape[0]
    # Level 1: the Sun's centre at CRPIX, off the frame's centre; rolled; AIA's plate scale.
    centre = m.wcs.world_to_pixel(SkyCoord(0 * u.arcsec, 0 * u.arcsec, frame=m.coordinate_frame))
    np.testing.assert_allclose(centre, [header["CRPIX1"] - 1, header["CRPIX2"] - 1], atol=1e-6)
    assert 0.5 < np.hypot(centre[0] - (n - 1) / 2, centre[1] - (n - 1) / 2) < 3
    assert 0.2 < header["CROTA2"] < 0.3
    assert m.scale[0].to_value(u.arcsec / u.pix) == pytest.approx(9.6 * 0.599489 / 0.6)
    assert u.allclose(m.observer_coordinate.lat, sun.B0(m.reference_date), atol=1e-5 * u.deg)
    assert u.allclose(m.dsun, sun.earth_distance(m.reference_date), rtol=1e-6)
    # The data show the disk where the header puts it: the limb (the brightest ring) at RSUN_OBS.
    y, x = np.indices(m.data.shape)
    radius = np.hypot(x - centre[0], y - centre[1]) * m.scale[0].value
    edges = np.arange(0, 1.3, 0.01) * m.rsun_obs.value
    profile = [np.median(m.data[(radius >= a) & (radius < b)]) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    assert edges[np.argmax(profile)] / m.rsun_obs.value == pytest.approx(1, abs=0.015)
    centre_rate = np.median(m.data[radius < 0.3 * m.rsun_obs.value])
    assert 0 < np.median(m.data[radius > 1.5 * m.rsun_obs.value]) < 0.05 * centre_rate  # a faint corona
    # Each channel its own place in the 12 s AIA cycle.
    start = Time("2011-02-15T00:00:00")
    assert (written.times[171][0] - start).to_value(u.s) == pytest.approx(1.34, abs=0.15)
    assert (written.times[335][0] - start).to_value(u.s) == pytest.approx(3.57, abs=0.15)


def test_register_corrects_pointing_and_roll_as_aiapy(written):
    m = _map(written, 335, 3)
    ours = register(m)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # aiapy's own warnings on the input
        reference = aiapy.calibrate.register(m)
    assert np.nanmax(np.abs(ours.data - reference.data)) / np.nanmax(np.abs(reference.data)) < 1e-6
    assert ours.meta["crpix1"] == reference.meta["crpix1"] and ours.meta["cdelt1"] == reference.meta["cdelt1"]
    # Level 1.5: north up, 9.6" pixels, the Sun's centre at the frame's centre.
    np.testing.assert_allclose(ours.rotation_matrix, np.eye(2), atol=1e-12)
    assert ours.scale[0] == 9.6 * u.arcsec / u.pix
    n = m.data.shape[0]
    centre = ours.wcs.world_to_pixel(SkyCoord(0 * u.arcsec, 0 * u.arcsec, frame=ours.coordinate_frame))
    np.testing.assert_allclose(centre, [(n - 1) / 2] * 2, atol=1e-6)
    # The content moved with the header: the bright points are where sunpy puts them.
    for measured, expected in _bright_points(ours, written):
        assert np.hypot(*(measured - expected)) < 0.05


def _bright_points(smap, obs, model="howard"):
    """(measured, expected) pixel positions of the bright points in a map: Gaussian + plane fits."""
    with propagate_with_solar_surface(model):
        expected = obs.bright_points.transform_to(smap.coordinate_frame)
    positions = np.transpose(smap.wcs.world_to_pixel(expected))

    def model_image(xy, amplitude, x0, y0, width, c0, cx, cy):
        x, y = xy
        return amplitude * np.exp(-0.5 * ((x - x0) ** 2 + (y - y0) ** 2) / width**2) + c0 + cx * x + cy * y

    for x, y in positions:
        i, j = int(round(y)), int(round(x))
        cut = smap.data[i - 4:i + 5, j - 4:j + 5].astype(float)
        yy, xx = np.mgrid[i - 4:i + 5, j - 4:j + 5]
        fit, _ = curve_fit(model_image, (xx.ravel(), yy.ravel()), cut.ravel(),
                           p0=[np.ptp(cut), x, y, 1, cut.min(), 0, 0])
        yield fit[1:3], np.array([x, y])


def test_active_region_rotates_with_the_solar_surface(hours):
    """Compact features fixed on the surface move as sunpy's differential rotation says."""
    first, last = _map(hours, 171, 0), _map(hours, 171, -1)
    moved = [e1 - e0 for (_, e0), (_, e1) in zip(_bright_points(first, hours), _bright_points(last, hours),
                                                  strict=True)]
    assert np.min(np.array(moved)[:, 0]) > 6  # pixels of 4.8" in 4 hours: the surface rotates west
    for index, time in enumerate(hours.times[171]):
        smap = _map(hours, 171, index)
        errors = [np.hypot(*(m - e)) for m, e in _bright_points(smap, hours)]
        assert max(errors) < 0.012, time  # Howard's model, as propagate_with_solar_surface applies it
        # RotatedSunFrame: the same model, the point carried along the Sun's barycentric motion as
        # propagate_with_solar_surface does not (about 0.04" per hour).
        rotated = SkyCoord(RotatedSunFrame(base=hours.bright_points, rotated_time=time))
        expected = np.transpose(smap.wcs.world_to_pixel(rotated.transform_to(smap.coordinate_frame)))
        measured = np.array([m for m, _ in _bright_points(smap, hours)])
        assert np.hypot(*(measured - expected).T).max() < 0.03
    # Rigid rotation is not what the frames show.
    far = _map(hours, 171, 0)  # three hours before the reference time
    assert max(np.hypot(*(m - e)) for m, e in _bright_points(far, hours, model="rigid")) > 0.035


def test_tracker_follows_sunpy():
    """The interpolated surface mapping agrees with sunpy's transform to a thousandth of a pixel."""
    obs = make_full_disk_observation(channels=(171,), duration=24 * u.s, bad_quality=0, **SMALL)
    truth = sunpy.map.Map(np.zeros(obs.loop_mask.shape), obs.truth_header)
    start = obs.reference_time - 3 * u.h
    tracker = SurfaceTracker(truth, start, start + 6 * u.h, (-700, -100), (-50, 450), spacing=19.2)
    rng = np.random.default_rng(1)
    u_, v_ = rng.uniform(-650, -150, 20), rng.uniform(0, 400, 20)
    for seconds in (0, 4000, 11000, 21600):
        time = start + seconds * u.s
        frame = Helioprojective(observer=get_earth(time), obstime=time, rsun=truth.coordinate_frame.rsun)
        # Tangent-plane coordinates -> helioprojective: the TAN projection, north up.
        theta = np.hypot(u_, v_) * u.arcsec
        scale = np.arctan(theta.to_value(u.rad)) / theta.to_value(u.rad)
        seen = SkyCoord(Angle(u_ * scale, u.arcsec), v_ * scale * u.arcsec, frame=frame)
        with propagate_with_solar_surface():
            x, y = truth.wcs.world_to_pixel(seen.transform_to(truth.coordinate_frame))
        tx, ty = tracker(u_[None], v_[None], np.array([seconds]))
        assert np.abs(tx[0] - x).max() < 1e-3 and np.abs(ty[0] - y).max() < 1e-3


def test_truth_is_on_the_derotated_grid(written):
    """The reference grid is the submap, at the region, of the registered first frame of any channel."""
    ny, nx = written.loop_mask.shape
    assert (written.truth_header["naxis2"], written.truth_header["naxis1"]) == (ny, nx)
    truth_wcs = written.reference_wcs
    corners = ([0, nx - 1, 0, nx - 1], [0, 0, ny - 1, ny - 1])
    for c in written.channels:
        registered = register(_map(written, c, 0))
        sub = registered.submap(written.bottom_left, top_right=written.top_right)
        assert sub.data.shape == (ny, nx)
        np.testing.assert_allclose(sub.wcs.pixel_to_world_values(*corners), truth_wcs.pixel_to_world_values(*corners),
                                   atol=1e-9)
    truth = written.true_timelag_map(335, 171)
    assert isinstance(truth, sunpy.map.GenericMap) and truth.unit == u.s
    assert abs(truth.reference_date - written.reference_time) < 1 * u.ms
    assert u.allclose(truth.observer_coordinate.lat, sun.B0(written.reference_time), atol=1e-5 * u.deg)
    lag = written.true_timelag(335, 171)
    np.testing.assert_array_equal(truth.data, lag)
    assert np.all(lag[written.loop_mask] > 0) and np.all(np.isnan(lag[~written.loop_mask]))
    np.testing.assert_array_equal(written.true_timelag(171, 335), -lag)
    # The corners are the centres of the grid's corner pixels, at the reference time.
    assert written.bottom_left.obstime == written.reference_time
    np.testing.assert_allclose(truth.wcs.world_to_pixel(written.top_right), [nx - 1, ny - 1], atol=1e-6)
    # The loops are where the truth says: brighter than the rest of the grid.
    frame = register(_map(written, 171, N_FRAMES // 2)).submap(written.bottom_left, top_right=written.top_right)
    assert np.mean(frame.data[written.loop_mask]) > 1.3 * np.mean(frame.data[~written.loop_mask])


def test_flagged_frames(written):
    meanings = {QUALITY_FAULTS[0][1]: "Image Stabilization System (ISS) loop is open",
                QUALITY_FAULTS[1][1]: "more than 5% of the value of the TOTVALS",
                QUALITY_FAULTS[2][1]: "Spacecraft eclipse flag is set"}
    for c in written.channels:
        flagged = np.flatnonzero(written.quality[c])
        assert flagged.size == 2 and 0 < flagged.min() and flagged.max() < N_FRAMES - 1
        for i in flagged:
            header = written.headers[c][i]
            assert header["QUALITY"] == written.quality[c][i]
            assert any(meanings[header["QUALITY"]] in m for m in check_quality_flag(header["QUALITY"]))
            data = _map(written, c, i).data
            if header["QUALITY"] == QUALITY_FAULTS[1][1]:  # missing pixels, counted in MISSVALS
                assert np.isnan(data).sum() == header["MISSVALS"] > 0.05 * header["TOTVALS"]
            if header["QUALITY"] == QUALITY_FAULTS[0][1]:
                assert header["AISTATE"] == "OPEN"
        for i in np.flatnonzero(written.quality[c] == 0):
            assert written.headers[c][i]["AISTATE"] == "CLOSED" and written.headers[c][i]["MISSVALS"] == 0


def test_from_files_leaves_flagged_frames_out(written):
    for c in written.channels:
        flagged = [str(written.files[c][i]) for i in np.flatnonzero(written.quality[c])]
        with pytest.warns(TimelagWarning, match=r"left out 2 of 20 frames flagged in QUALITY") as record:
            cube = TimelagCube.from_files(str(written.files[c][0].parent / "*.fits"))
        message = str(record[0].message)
        assert all(name in message for name in flagged)
        for i in np.flatnonzero(written.quality[c]):
            assert all(meaning in message for meaning in check_quality_flag(written.quality[c][i]))
        good = written.quality[c] == 0
        assert cube.data.shape[0] == good.sum() and np.all(cube.time == written.times[c][good])
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            kept = TimelagCube.from_files(written.files[c], quality="keep")
        assert kept.data.shape[0] == N_FRAMES
        # A missing-data frame reads as astropy reads it: NaN where BLANK.
        for i in np.flatnonzero(written.quality[c] == QUALITY_FAULTS[1][1]):
            np.testing.assert_array_equal(kept.data[i].compute(), fits.getdata(written.files[c][i], ext=1))


def test_blank_pixels_read_as_astropy_reads_them(written, tmp_path):
    """AIA's BLANK: float32 frames, NaN where missing, compressed (as served) or not."""
    index = int(np.flatnonzero(written.quality[171] == QUALITY_FAULTS[1][1])[0])
    compressed = written.files[171][index]
    with fits.open(compressed, do_not_scale_image_data=True) as hdulist:
        plain = tmp_path / "plain.fits"
        fits.PrimaryHDU(hdulist[1].data, hdulist[1].header).writeto(plain)
    for path in (compressed, plain):
        cube = TimelagCube.from_files(str(path), quality="keep")
        expected = fits.getdata(path)
        assert cube.data.dtype == expected.dtype == np.float32
        assert np.isnan(expected).sum() == written.headers[171][index]["MISSVALS"]
        np.testing.assert_array_equal(cube.data[0].compute(), expected)
        np.testing.assert_array_equal(cube.data[0, 120:140, 10:20].compute(), expected[120:140, 10:20])


@pytest.mark.filterwarnings("ignore:.*pixels are constant or contain NaN:UserWarning")  # faint 335 A quiet Sun
def test_excluded_frames_are_missing_frames(written):
    """Leaving flagged frames out is the same as not having them: the same lags."""
    region = dict(top_right=written.top_right)
    with pytest.warns(TimelagWarning, match="flagged in QUALITY"):
        cubes = [TimelagCube.from_files(written.files[c]).submap(written.bottom_left, **region)
                 for c in written.channels]
    without = [TimelagCube.from_files([f for f, q in zip(written.files[c], written.quality[c], strict=True) if not q])
               .submap(written.bottom_left, **region) for c in written.channels]
    bounds = [-1, 1] * u.min
    np.testing.assert_array_equal(cubes[0].timelag_map(cubes[1], lag_bounds=bounds).data,
                                  without[0].timelag_map(without[1], lag_bounds=bounds).data)


def test_aec_exposures(written):
    for c in written.channels:
        exposure = written.exposure_time[c].to_value(u.s)
        short = exposure < 0.7 * np.median(exposure)
        assert short.sum() >= 1
        i, j = np.flatnonzero(short)[0], np.flatnonzero(~short & (written.quality[c] == 0))[0]
        disk = np.s_[60:100, 110:150]  # quiet disk, away from the active region
        ratio = np.mean(_map(written, c, i).data[disk]) / np.mean(_map(written, c, j).data[disk])
        assert ratio == pytest.approx(exposure[i] / exposure[j], rel=0.02)


def test_deterministic_and_flags_independent():
    kwargs = dict(channels=(94,), duration=1 * u.min, seed=4, **SMALL)
    a, b = make_full_disk_observation(bad_quality=2, **kwargs), make_full_disk_observation(bad_quality=2, **kwargs)
    clean = make_full_disk_observation(bad_quality=0, **kwargs)
    np.testing.assert_array_equal(a.data[94], b.data[94])
    good = a.quality[94] == 0
    assert (~good).sum() == 2 and np.all(clean.quality[94] == 0)
    np.testing.assert_array_equal(a.data[94][good], clean.data[94][good])
    assert not np.array_equal(a.data[94][~good], clean.data[94][~good])
    single = make_full_disk_observation(bad_quality=2, **{**kwargs, "channels": (94, 131)})
    np.testing.assert_array_equal(single.data[94], a.data[94])


def test_rewrite_replaces_but_never_foreign_folders(tmp_path):
    kwargs = dict(channels=(171,), cadence=12 * u.s, bad_quality=0, **SMALL)
    make_full_disk_observation(tmp_path, duration=48 * u.s, **kwargs)
    obs = make_full_disk_observation(tmp_path, duration=24 * u.s, **kwargs)
    assert sorted((tmp_path / "171").iterdir()) == obs.files[171] and len(obs.files[171]) == 2
    # A real JSOC file of the same name is never replaced.
    fits.setval(obs.files[171][0], "ORIGIN", value="SDO/JSOC-SDP", ext=1)
    with pytest.raises(OutputPathError, match=rf"refusing to replace .*171: {obs.files[171][0].name} is not a synth"):
        make_full_disk_observation(tmp_path, duration=24 * u.s, **kwargs)
    assert fits.getval(obs.files[171][0], "ORIGIN", ext=1) == "SDO/JSOC-SDP"
    fits.setval(obs.files[171][0], "ORIGIN", value="sunpy_timelag synthetic", ext=1)
    (tmp_path / "171" / "notes.txt").write_text("mine")
    with pytest.raises(OutputPathError, match=r"refusing to replace .*171: notes\.txt is not a synthetic frame"):
        make_full_disk_observation(tmp_path, duration=24 * u.s, **kwargs)
    assert (tmp_path / "171" / "notes.txt").read_text() == "mine"


def test_disk_profile():
    rho = np.array([0.0, 0.5, 0.9, 1.0, 1.1, 1.2])
    profile = disk_profile(rho, scale_height=0.1, limb_width=1e-6)
    assert profile[0] == pytest.approx(1)
    assert profile[1] == pytest.approx(1 / np.sqrt(0.75 + 0.2 / np.pi) * np.sqrt(1 + 0.2 / np.pi))
    assert np.all(np.diff(profile[:4]) > 0)  # limb brightening
    # Above the limb: a hydrostatic layer of scale height 0.1 seen edge-on.
    assert profile[5] / profile[4] == pytest.approx(np.exp(-1) * np.sqrt(1.2 / 1.1))


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(channels=(304,)), "not one of the channels"),
    (dict(shape=(256, 200)), "shape must be square"),
    (dict(shape=(128, 128), plate_scale=9.6 * u.arcsec), re.escape("128 pixels of 9.6 arcsec do not hold")),
    (dict(plate_scale=25 * u.arcsec, shape=(128, 128)), "plate_scale must be positive and at most 20"),
    (dict(bad_quality=-1), "bad_quality must be a number of frames"),
    (dict(duration=36 * u.s, bad_quality=2), "at least bad_quality"),
])
def test_invalid_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_full_disk_observation(**{"duration": 1 * u.min, **SMALL, **kwargs})

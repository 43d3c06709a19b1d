"""
AIA's QUALITY keyword in `TimelagCube.from_files`: flagged frames are left out (as aiapy reads the
flags), or kept on request; the time grid treats them as missing frames.
"""
import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits

from sunpy_timelag import TimelagCube
from sunpy_timelag.io.headers import quality_meanings, select_quality
from sunpy_timelag.lags import TimelagWarning

from .conftest import write_frames

try:
    from aiapy.utils import check_quality_flag
except ImportError:  # aiapy < 0.11
    from aiapy.util import check_quality_flag

#: QUALITY of the six frames, set by hand: nominal, the ISS loop open, eclipse and sun presence,
#: bit 31 ("image not available", written as a signed 32-bit integer), a bit aiapy leaves unnamed.
QUALITY = [0, 1 << 17, (1 << 13) | (1 << 14), 0, -(1 << 31), 1 << 5]


def _set_quality(paths, values):
    for path, value in zip(paths, values, strict=True):
        with fits.open(path, mode="update") as hdulist:
            if value is None:
                del hdulist[0].header["QUALITY"]
            else:
                hdulist[0].header["QUALITY"] = value


@pytest.fixture
def flagged(tmp_path):
    paths = write_frames(tmp_path / "171")
    _set_quality(paths, QUALITY)
    return paths


def test_flagged_frames_are_those_aiapy_calls_not_nominal(flagged):
    not_nominal = [check_quality_flag(q & 0xFFFFFFFF) != ["nominal"] for q in QUALITY]
    assert not_nominal == [False, True, True, False, True, True]
    with pytest.warns(TimelagWarning, match="left out 4 of 6 frames flagged in QUALITY") as record:
        cube = TimelagCube.from_files(flagged)
    assert len(record) == 1
    message = str(record[0].message)
    # The first three flagged frames are named, with aiapy's meaning of their bits; the fourth is counted.
    named = [(path, q) for path, q, bad in zip(flagged, QUALITY, not_nominal, strict=True) if bad]
    for path, q in named[:3]:
        assert path in message and all(meaning in message for meaning in check_quality_flag(q & 0xFFFFFFFF))
    assert named[3][0] not in message
    assert "and 1 more" in message and "quality='keep'" in message
    expected = TimelagCube.from_files([p for p, bad in zip(flagged, not_nominal, strict=True) if not bad])
    assert np.all(cube.time == expected.time)
    np.testing.assert_array_equal(cube.data.compute(), expected.data.compute())
    np.testing.assert_array_equal(cube.exposure_time, expected.exposure_time)


def test_keep(flagged):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cube = TimelagCube.from_files(flagged, quality="keep")
    assert cube.data.shape[0] == 6
    assert [h["QUALITY"] for h in cube.headers] == QUALITY


def test_quality_meanings_are_aiapy_s():
    for value in (0, 1 << 17, (1 << 8) | (1 << 9), 1 << 31, 1 << 5):
        assert quality_meanings(value) == check_quality_flag(value)


def test_frames_without_quality_are_nominal(tmp_path):
    paths = write_frames(tmp_path / "171")
    _set_quality(paths, [None, None, 1 << 18, None, None, None])
    with pytest.warns(TimelagWarning, match="left out 1 of 6 frames") as record:
        cube = TimelagCube.from_files(paths)
    assert "Calibration image" in str(record[0].message)
    assert cube.data.shape[0] == 5


def test_select_quality_on_headers():
    headers = [{"QUALITY": q} for q in (0, 4, 0)] + [{}]
    names = ["a", "b", "c", "d"]
    with pytest.warns(TimelagWarning, match=r"left out 1 of 4 frames .*: b \(QUALITY=4: "):
        keep = select_quality(headers, names)
    np.testing.assert_array_equal(keep, [True, False, True, True])
    np.testing.assert_array_equal(select_quality(headers, names, "keep"), [True] * 4)


@pytest.mark.parametrize(("quality", "value", "match"), [
    ("maybe", 0, r"quality must be one of \('exclude', 'keep'\), got 'maybe'"),
    ("exclude", "bad", r"frame_.* has QUALITY='bad', which is not an integer"),
    ("exclude", 2.5, r"frame_.* has QUALITY=2.5, which is not an integer"),
    ("exclude", 1 << 12, r"all 6 frames are flagged in QUALITY .*pass quality='keep' to use them"),
])
def test_errors(tmp_path, quality, value, match):
    paths = write_frames(tmp_path / "171")
    _set_quality(paths, [value] * 6)
    with pytest.raises(ValueError, match=match):
        TimelagCube.from_files(paths, quality=quality)


def test_lags_as_if_the_flagged_frames_were_missing(tmp_path):
    """A flagged frame left out is a missing frame: the lags are those of the files without it."""
    from sunpy_timelag.data import make_synthetic_observation

    obs = make_synthetic_observation(tmp_path, channels=(335, 171), duration=20 * u.min, shape=(16, 16), seed=2)
    bad = [3, 40, 41]
    _set_quality([obs.files[171][i] for i in bad], [1 << 17] * 3)
    with pytest.warns(TimelagWarning, match="left out 3 of 100 frames"):
        c171 = TimelagCube.from_files(obs.files[171])
    c335 = TimelagCube.from_files(obs.files[335])
    missing = TimelagCube.from_files([f for i, f in enumerate(obs.files[171]) if i not in bad])
    lag = c335.timelag_map(c171, lag_bounds=[-10, 10] * u.min)
    np.testing.assert_array_equal(lag.data, c335.timelag_map(missing, lag_bounds=[-10, 10] * u.min).data)
    # Missing frames never shift the lags: close to those with every frame, in the loops.
    every = c335.timelag_map(TimelagCube.from_files(obs.files[171], quality="keep"), lag_bounds=[-10, 10] * u.min)
    loops = obs.loop_mask
    assert np.median(np.abs(lag.data[loops] - every.data[loops])) < 2

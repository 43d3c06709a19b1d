"""Result maps on disk: FITS that keep the mask, units, provenance and names; whole result sets saved and loaded."""
import warnings

import astropy.units as u
import matplotlib
import numpy as np
import pytest
import sunpy.map
from astropy.io import fits
from astropy.nddata import StdDevUncertainty
from astropy.time import Time

from sunpy_timelag import ResultMap, TimelagCube, TimelagResults, __version__, load_map, timelag_maps
from sunpy_timelag.data import make_synthetic_observation
from sunpy_timelag.lags import TimelagWarning

from .conftest import AIA_171

matplotlib.use("Agg")

FIELDS = ("timelag", "correlation", "uncertainty", "significance")


@pytest.fixture(scope="module")
def observation():
    return make_synthetic_observation(channels=(335, 211, 171), duration=40 * u.min, shape=(16, 16), seed=2)


@pytest.fixture(scope="module")
def results(observation):
    """Maps of three pairs from cubes derotated to the middle of the observation, normalised and binned 2x2."""
    reference = observation.times[335][100]
    cubes = []
    for channel in observation.channels:
        frames = [sunpy.map.Map(data, fits.Header.fromstring(text))
                  for data, text in zip(observation.data[channel], observation.header_texts[channel], strict=True)]
        cube = TimelagCube.from_maps(frames).derotate(observation.bottom_left, top_right=observation.top_right,
                                                      reference_time=reference)
        cubes.append(cube.normalize_exposure()[:, :10].rebin((1, 2, 2)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TimelagWarning)  # pixels off the derotated grid
        return timelag_maps(cubes, lag_bounds=[-10, 10] * u.min, normalization="overlap", min_correlation=0.1,
                            uncertainty=True, significance=True)


def test_saved_lag_map_keeps_mask_uncertainty_units_and_provenance(results, observation, tmp_path):
    lag = results[335, 171].timelag
    assert lag.mask.any() and not lag.mask.all()  # some peaks on a bound: the mask matters
    path = tmp_path / "timelag_335_171.fits"
    lag.save(path)

    # as any FITS reader sees it
    with fits.open(path) as hdus:
        header = hdus[0].header
        np.testing.assert_array_equal(hdus[0].data, lag.data)
        np.testing.assert_array_equal(hdus["MASK"].data["MASK"][0], lag.mask)
        np.testing.assert_array_equal(hdus["UNCERT"].data["UNCERT"][0], lag.uncertainty.array)
        assert hdus["UNCERT"].columns["UNCERT"].unit == "s"
    assert header["BUNIT"] == "s" and header["BTYPE"] == "time lag"
    assert (header["CHANNELA"], header["CHANNELB"]) == (335, 171)
    assert header["LAGMIN"] == pytest.approx(-600) and header["LAGMAX"] == pytest.approx(600)
    assert header.comments["LAGMIN"] == "[s] smallest lag searched"
    assert header.comments["LAGMAX"] == "[s] largest lag searched"
    assert header.comments["CADENCE"].startswith("[s]") and header["CADENCE"] == pytest.approx(12, abs=1e-6)
    assert header["LAGNORM"] == "overlap" and header["REFINE"] is True and header["MINCORR"] == 0.1
    assert (header["XBINNING"], header["YBINNING"]) == (2, 2) and header["CUBEUNIT"] == "DN / s"
    assert abs(Time(header["DEROTREF"]) - observation.times[335][100]) < 1 * u.ms and header["DEROTMOD"] == "howard"
    history = list(header["HISTORY"])
    assert history[0] == f"sunpy_timelag {__version__}" and header["VERS_SW"] == __version__
    assert "normalization=overlap refine=True min_correlation=0.1" in history
    assert "binned 2x2 frame pixels (x, y)" in history
    assert f"derotated to {header['DEROTREF']} ({header['DEROTMOD']})" in history

    # sunpy reads one map, the image, as it reads any FITS map
    image = sunpy.map.Map(path)
    assert isinstance(image, sunpy.map.GenericMap) and image.unit == u.s
    np.testing.assert_array_equal(image.data, lag.data)

    # load_map reads everything back
    again = load_map(path)
    assert isinstance(again, ResultMap)
    np.testing.assert_array_equal(again.data, lag.data)
    np.testing.assert_array_equal(again.mask, lag.mask)
    assert isinstance(again.uncertainty, StdDevUncertainty) and again.uncertainty.unit == u.s
    np.testing.assert_array_equal(again.uncertainty.array, lag.uncertainty.array)
    for key in ("history", "comment", "lagmin", "lagmax", "cadence", "lagnorm", "derotref", "date-obs", "date-end"):
        assert again.meta[key] == lag.meta[key], key
    assert {key: again.meta["keycomments"][key] for key in lag.meta["keycomments"]} == lag.meta["keycomments"]
    assert again.name == lag.name and again.channels == (335, 171)
    assert again.plot_settings["cmap"] == lag.plot_settings["cmap"]
    assert again.plot_settings["norm"].vmax == lag.plot_settings["norm"].vmax
    pixel = (1 * u.pix, 2 * u.pix)
    assert again.pixel_to_world(*pixel).separation(lag.pixel_to_world(*pixel)) < 1e-9 * u.deg


def test_result_maps_say_what_they_are(results):
    import matplotlib.pyplot as plt

    maps = results[211, 171]
    date = maps.timelag.date.strftime("%Y-%m-%d %H:%M:%S")
    assert maps.timelag.name == f"AIA 211-171 Å time lag {date}"
    assert maps.correlation.name == f"AIA 211-171 Å peak correlation {date}"
    assert maps.uncertainty.name == f"AIA 211-171 Å lag uncertainty {date}"
    assert maps.significance.name == f"AIA 211-171 Å chance probability {date}"
    assert "Measurement:\t\t 211-171 Å time lag" in repr(maps.timelag)
    figure = plt.figure()
    axes = figure.add_subplot(projection=maps.timelag)
    maps.timelag.plot(axes=axes)
    assert axes.get_title() == maps.timelag.name
    plt.close(figure)


def test_lag_colour_scale_is_symmetric_and_robust(results):
    for maps in results.values():
        lag = maps.timelag
        norm = lag.plot_settings["norm"]
        assert norm.vmin == -norm.vmax and 0 < norm.vmax <= lag.meta["lagmax"]
        shown = np.abs(lag.data[np.isfinite(lag.data) & ~lag.mask])
        assert np.mean(shown > norm.vmax) <= 0.02 + 1 / shown.size  # at most the 2 % beyond the 98th percentile
        assert lag.plot_settings["cmap"] == "RdBu_r"


def test_results_save_and_load_as_a_whole(results, tmp_path):
    written = results.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in written) == sorted(
        f"{field}_{a}_{b}.fits" for a, b in [(335, 211), (335, 171), (211, 171)] for field in FIELDS)
    loaded = TimelagResults.load(tmp_path)
    assert isinstance(loaded, TimelagResults) and list(loaded) == list(results)  # hot to cool, as computed
    for pair, maps in results.items():
        for field in FIELDS:
            original, again = getattr(maps, field), getattr(loaded[pair], field)
            assert isinstance(again, ResultMap) and again.name == original.name
            np.testing.assert_array_equal(again.data, original.data)
            assert (again.mask is None) == (original.mask is None)
            if original.mask is not None:
                np.testing.assert_array_equal(again.mask, original.mask)
            if original.uncertainty is not None:
                np.testing.assert_array_equal(again.uncertainty.array, original.uncertainty.array)
            for key, value in original.meta.items():
                if key != "keycomments":
                    assert again.meta[key] == (pytest.approx(value) if isinstance(value, float) else value), key
    assert not list(tmp_path.glob(".*"))  # no staging folders left


def test_saving_over_results_needs_overwrite_and_leaves_one_set(results, tmp_path):
    results.save(tmp_path)
    before = (tmp_path / "timelag_335_171.fits").read_bytes()
    with pytest.raises(FileExistsError, match=r"holds result maps \(correlation_211_171.fits\): give overwrite=True"):
        results.save(tmp_path)
    assert (tmp_path / "timelag_335_171.fits").read_bytes() == before
    one = TimelagResults({(335, 171): results[335, 171]._replace(uncertainty=None, significance=None)})
    one.save(tmp_path, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["correlation_335_171.fits", "timelag_335_171.fits"]
    loaded = TimelagResults.load(tmp_path)
    assert list(loaded) == [(335, 171)] and loaded[335, 171].significance is None


def test_loading_what_is_not_a_result_set_names_the_problem(results, tmp_path):
    with pytest.raises(FileNotFoundError, match="no results folder at .*missing"):
        TimelagResults.load(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match=r"holds no result maps \(files such as timelag_335_171.fits\)"):
        TimelagResults.load(tmp_path)
    results[335, 171].timelag.save(tmp_path / "timelag_335_171.fits")
    with pytest.raises(FileNotFoundError, match="maps of the pair 335-171 but not correlation_335_171.fits"):
        TimelagResults.load(tmp_path)
    with pytest.raises(ValueError, match="aia_171_level1.fits is not a result map of sunpy_timelag"):
        load_map(AIA_171)
    with pytest.raises(FileNotFoundError, match="no result map at .*nothing.fits"):
        load_map(tmp_path / "nothing.fits")

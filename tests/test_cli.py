"""The ``sunpy-timelag`` command."""
import astropy.units as u
import numpy as np
import pytest
import sunpy.map

from sunpy_timelag.cli import main, parse_duration
from sunpy_timelag.data import make_synthetic_observation


@pytest.fixture(scope="module")
def observation(tmp_path_factory):
    directory = tmp_path_factory.mktemp("obs")
    return make_synthetic_observation(directory, channels=(335, 211), duration=90 * u.min, shape=(24, 24), seed=5)


def test_run_writes_maps_that_match_the_truth(observation, tmp_path, capsys):
    pattern = str(observation.files[211][0].parent.parent / "{channel}" / "*.fits")
    code = main(["run", pattern, "--pairs", "335-211", "--lag-bounds", "-30min", "30min", "--out", str(tmp_path)])
    assert code == 0
    lag = sunpy.map.Map(tmp_path / "timelag_335_211.fits")
    correlation = sunpy.map.Map(tmp_path / "correlation_335_211.fits")
    assert (tmp_path / "timelag_335_211.png").stat().st_size > 10_000
    assert lag.unit == u.s and lag.meta["lagmin"] == pytest.approx(-1800)
    truth = observation.true_timelag(335, 211)
    loops = np.isfinite(truth)
    assert np.median(np.abs(lag.data - truth)[loops]) < 6
    assert np.median(correlation.data[loops]) > 0.5
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind
    assert "Results in" in capsys.readouterr().out


def test_demo(tmp_path, capsys):
    code = main(["demo", "--duration", "40min", "--pairs", "335-211", "--lag-bounds", "-20min", "20min",
                 "--out", str(tmp_path)])
    assert code == 0
    output = capsys.readouterr().out
    assert "335-211" in output and "within one cadence" in output
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "correlation_335_211.fits", "timelag_335_211.fits", "timelag_335_211.png"]


def test_errors_name_their_cause(tmp_path, capsys):
    assert main(["run", str(tmp_path / "{channel}" / "*.fits"), "--pairs", "335-211"]) == 1
    assert "no file matches the glob" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["run", str(tmp_path / "*.fits"), "--pairs", "335-211"])
    with pytest.raises(SystemExit):
        main(["run", "x/{channel}/*.fits"])  # no pairs
    with pytest.raises(SystemExit):
        main(["run", "x/{channel}/*.fits", "--pairs", "335-211", "--lag-bounds", "-3 parsecs", "3h"])


def test_outputs_never_overwrite_inputs(observation, tmp_path, capsys):
    for channel in (335, 211):
        (tmp_path / str(channel)).mkdir()
        for path in observation.files[channel]:
            (tmp_path / str(channel) / path.name).write_bytes(path.read_bytes())
    victim = tmp_path / "211" / "timelag_335_211.fits"  # an input frame named as an output
    (tmp_path / "211" / observation.files[211][-1].name).rename(victim)
    before = victim.read_bytes()
    pattern = str(tmp_path / "{channel}" / "*.fits")
    assert main(["run", pattern, "--pairs", "335-211", "--out", str(tmp_path / "211")]) == 1
    assert "one of the inputs" in capsys.readouterr().err
    assert victim.read_bytes() == before


@pytest.mark.parametrize(("text", "seconds"), [("-3h", -10800), ("90min", 5400), ("20 s", 20), ("7", 7)])
def test_parse_duration(text, seconds):
    assert parse_duration(text).to_value(u.s) == pytest.approx(seconds)

"""The ``sunpy-timelag`` command: results that match the truth, results folders, errors without tracebacks."""
import gzip
import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
import sunpy.map

from sunpy_timelag import TimelagCube, __version__, cli
from sunpy_timelag.cli import main, parse_duration
from sunpy_timelag.data import make_synthetic_observation
from sunpy_timelag.io.write import lock_folder


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


def test_demo_runs_the_full_disk_pipeline_and_recovers_the_truth(tmp_path, capsys):
    # level-1 full-disk files -> register -> derotate -> normalise -> maps; 193-171 lags are 4 to 8 min
    code = main(["demo", "--duration", "60min", "--pairs", "193-171", "--lag-bounds", "-20min", "20min",
                 "--out", str(tmp_path)])
    assert code == 0
    output = capsys.readouterr().out
    assert "193: left out 1 of 300 frames flagged in QUALITY" in output  # said as a step, no traceback-like warning
    row = next(line for line in output.splitlines() if line.split()[:1] == ["193-171"])
    median_error, within, correlation = row.split()[1:]
    assert float(median_error) < 12 / 3  # a third of AIA's 12 s cadence
    assert float(within.rstrip("%")) > 80 and float(correlation) > 0.8
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "correlation_193_171.fits", "lag_histograms.png", "manifest.json", "timelag_193_171.fits",
        "timelag_193_171.png", "timelag_grid.png"]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["options"]["register"] and manifest["options"]["derotate"]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A short observation: 100 frames of 16x16 pixels per channel."""
    directory = tmp_path_factory.mktemp("small")
    return make_synthetic_observation(directory, channels=(335, 211), duration=20 * u.min, shape=(16, 16), seed=1)


def pattern_of(observation):
    return str(observation.files[211][0].parent.parent / "{channel}" / "*.fits")


def test_manifest_marks_a_complete_result_set(small, tmp_path, capsys):
    assert main(["run", pattern_of(small), "--pairs", "335-211", "--lag-bounds", "-5min", "5min", "--rebin",
                 "1,2,2", "--out", str(tmp_path)]) == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["complete"] and manifest["sunpy_timelag"] == __version__ and manifest["command"] == "run"
    assert manifest["options"] == {"pattern": pattern_of(small), "pairs": ["335-211"], "lag_bounds_s": [-300, 300],
                                   "register": False, "region": None, "derotate": False,
                                   "reference_time": None, "rebin": [1, 2, 2], "normalize": True,
                                   "min_correlation": None, "normalization": "global", "uncertainty": False,
                                   "significance": False}
    for channel in (335, 211):
        assert [Path(name).name for name in manifest["inputs"][str(channel)]] == [p.name for p in small.files[channel]]
    assert sorted(manifest["outputs"]) == ["correlation_335_211.fits", "lag_histograms.png", "timelag_335_211.fits",
                                           "timelag_335_211.png", "timelag_grid.png"]
    for name, output in manifest["outputs"].items():
        assert output["sha256"] == hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*manifest["outputs"], "manifest.json"])  # no lock


def test_an_interrupted_run_leaves_no_manifest(small, tmp_path, capsys, monkeypatch):
    pattern = pattern_of(small)
    assert main(["run", pattern, "--pairs", "335-211", "--out", str(tmp_path)]) == 0

    def disk_full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cli, "_figure", disk_full)
    capsys.readouterr()
    assert main(["run", pattern, "--pairs", "335-211", "--lag-bounds", "-2min", "2min", "--out", str(tmp_path)]) == 1
    assert "No space left on device" in capsys.readouterr().err
    assert not (tmp_path / "manifest.json").exists()  # the maps there are not one complete set
    assert sunpy.map.Map(tmp_path / "timelag_335_211.fits").meta["lagmax"] == pytest.approx(120)  # the new run's
    assert not list(tmp_path.glob(".*"))  # the folder is free again


def test_a_folder_in_use_by_another_run_is_refused_before_any_computation(small, tmp_path, capsys, monkeypatch):
    built = []
    monkeypatch.setattr(cli, "_prepare", lambda *args, **kwargs: built.append(args))
    with lock_folder(tmp_path):
        assert main(["run", pattern_of(small), "--pairs", "335-211", "--out", str(tmp_path)]) == 1
    assert f"{tmp_path} is in use by another process (process {os.getpid()} on " in capsys.readouterr().err
    assert built == [] and os.listdir(tmp_path) == []


def test_a_lock_left_by_a_killed_run_is_taken_over(small, tmp_path, capsys):
    (tmp_path / ".sunpy-timelag.lock").write_text('{"pid": 4194304, "host": "elsewhere", "started": "yesterday"}')
    assert main(["run", pattern_of(small), "--pairs", "335-211", "--out", str(tmp_path)]) == 0
    assert ("a run into" in (err := capsys.readouterr().err) and "(process 4194304 on elsewhere, since yesterday) did "
            "not finish" in err)
    assert (tmp_path / "manifest.json").exists() and not list(tmp_path.glob(".*"))


@pytest.mark.parametrize(("out", "message"), [
    ("a-file", r"the results folder .*a-file is a file: give a folder as --out"),
    ("a-file/results", r"cannot create the results folder .*a-file/results: Not a directory"),
    ("211", r"the results folder .*211 holds input files \(aia_synth_211_.*\.fits\): choose another --out"),
])
def test_the_results_folder_is_checked_before_any_computation(small, tmp_path, capsys, monkeypatch, out, message):
    (tmp_path / "a-file").write_text("not a folder")
    built = []
    monkeypatch.setattr(cli, "_prepare", lambda *args, **kwargs: built.append(args))
    folder = small.files[211][0].parent.parent / out if out == "211" else tmp_path / out
    assert main(["run", pattern_of(small), "--pairs", "335-211", "--out", str(folder)]) == 1
    assert re.search(message, capsys.readouterr().err) and built == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="permissions do not bind root")
def test_a_read_only_results_folder_is_refused(small, tmp_path, capsys):
    tmp_path.chmod(0o500)
    try:
        assert main(["run", pattern_of(small), "--pairs", "335-211", "--out", str(tmp_path)]) == 1
    finally:
        tmp_path.chmod(0o700)
    assert f"cannot write to the folder {tmp_path}: Permission denied" in capsys.readouterr().err


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
    assert "211 holds input files" in capsys.readouterr().err
    assert victim.read_bytes() == before


@pytest.mark.parametrize(("arguments", "message"), [
    (["x/*.fits", "--pairs", "335-211"], "'x/\\*.fits' has no {channel}: e.g. 'obs/{channel}/\\*.fits'"),
    (["x/{band}/{channel}.fits", "--pairs", "335-211"],
     "has the field {band}: the only field of a file pattern is {channel}"),
    (["x/{channel/*.fits", "--pairs", "335-211"], "write a literal brace as {{ or }}"),
    (["x/{channel}/*.fits"], "run needs --pairs, e.g. --pairs 335-171,211-193"),
    (["x/{channel}/*.fits", "--pairs", "335-335"], "335-335 pairs a channel with itself: a time lag needs two"),
    (["x/{channel}/*.fits", "--pairs", "335-211", "--lag-bounds", "-3 parsecs", "3h"], "not a duration: ' -3 parsecs'"),
])
def test_argument_errors_name_the_argument(arguments, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", *arguments])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and "Traceback" not in err


def damage_header(folder):
    """Garble the EXPTIME card of one 211 frame."""
    path = sorted((folder / "211").iterdir())[3]
    raw = path.read_bytes()
    start = raw.index(b"EXPTIME =")
    path.write_bytes(raw[:start] + b"EXPTIME = '2.9 unterminated".ljust(34) + raw[start + 34 :])
    return rf"{path.name} has an unreadable header card: 'EXPTIME'"


def gzip_files(folder):
    for path in (folder / "211").iterdir():
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(path.read_bytes()))
    return r"aia_synth_211_.*\.fits\.gz is gzip-compressed as a whole"


@pytest.mark.parametrize(("damage", "pattern"), [
    (lambda folder: "no file matches the glob '.*/empty/335/\\*.fits'", "empty/{channel}/*.fits"),
    (damage_header, "{channel}/*.fits"),
    (gzip_files, "{channel}/*.fits*"),
    (lambda folder: r"'.*/335' is a folder: give its files, e.g. '.*/335/\*.fits'", "{channel}"),
])
def test_bad_inputs_are_printed_without_a_traceback(small, tmp_path, capsys, damage, pattern):
    """Each damage returns the message expected."""
    for channel in (335, 211):
        shutil.copytree(small.files[channel][0].parent, tmp_path / "obs" / str(channel))
    message = damage(tmp_path / "obs")
    assert main(["run", str(tmp_path / "obs" / pattern), "--pairs", "335-211", "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert re.search(rf"^sunpy-timelag: error: .*{message}", err) and "Traceback" not in err


@pytest.mark.parametrize(("text", "seconds"), [("-3h", -10800), ("90min", 5400), ("20 s", 20), ("7", 7)])
def test_parse_duration(text, seconds):
    assert parse_duration(text).to_value(u.s) == pytest.approx(seconds)


@pytest.fixture(scope="module")
def full_disk(tmp_path_factory):
    """Level-1 full-disk files of two channels, 30 min."""
    from sunpy_timelag.data import make_full_disk_observation

    return make_full_disk_observation(tmp_path_factory.mktemp("full_disk"), channels=(193, 171),
                                      duration=30 * u.min, bad_quality=0)


def test_run_registers_and_derotates_as_the_library_does(full_disk, tmp_path):
    from sunpy_timelag import timelag_maps

    corners = [(c.Tx.to_value(u.arcsec), c.Ty.to_value(u.arcsec)) for c in (full_disk.bottom_left, full_disk.top_right)]
    region = ",".join(f"{value:.3f}" for corner in corners for value in corner)
    pattern = str(full_disk.files[171][0].parent.parent / "{channel}" / "*.fits")
    assert main(["run", pattern, "--pairs", "193-171", "--lag-bounds", "-10min", "10min", "--register", "--derotate",
                 "--region", region, "--reference-time", full_disk.reference_time.isot, "--out", str(tmp_path)]) == 0
    written = sunpy.map.Map(tmp_path / "timelag_193_171.fits")
    cubes = [TimelagCube.from_files(full_disk.files[c]).register().derotate(
        full_disk.bottom_left, top_right=full_disk.top_right, reference_time=full_disk.reference_time
    ).normalize_exposure() for c in (193, 171)]
    expected = timelag_maps(cubes, lag_bounds=[-10, 10] * u.min)[193, 171].timelag
    assert written.data.shape == full_disk.loop_mask.shape
    np.testing.assert_allclose(written.data, expected.data, rtol=1e-6, equal_nan=True)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["options"]["region"] == [[pytest.approx(v, abs=1e-3) for v in corner] for corner in corners]


@pytest.mark.parametrize(("argument", "message"), [
    ("1,2,3", "--region takes four numbers"), ("10,10,0,20", "below and left of the second"),
])
def test_bad_region_is_named(argument, message, capsys):
    with pytest.raises(SystemExit):
        main(["run", "obs/{channel}/*.fits", "--pairs", "335-171", "--region", argument])
    assert message in capsys.readouterr().err


def test_run_writes_uncertainty_and_significance_maps_and_masks_chance_lags(small, tmp_path, monkeypatch, capsys):
    from sunpy_timelag import TimelagResults

    figures = []
    save = cli._save
    monkeypatch.setattr(cli, "_save", lambda figure, path: (figures.append(figure), save(figure, path)))
    assert main(["run", pattern_of(small), "--pairs", "335-211", "--lag-bounds", "-5min", "5min", "--normalization",
                 "overlap", "--uncertainty", "--significance", "--min-correlation", "0.1", "--out", str(tmp_path)]) == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert {"uncertainty_335_211.fits", "significance_335_211.fits"} <= set(manifest["outputs"])
    assert manifest["options"]["normalization"] == "overlap" and manifest["options"]["min_correlation"] == 0.1
    written = TimelagResults.load(tmp_path)[335, 211]
    cubes = [TimelagCube.from_files(small.files[c]).normalize_exposure() for c in (335, 211)]
    expected = timelag_maps_of(cubes, normalization="overlap", min_correlation=0.1)
    for field in ("timelag", "correlation", "uncertainty", "significance"):
        np.testing.assert_allclose(getattr(written, field).data, getattr(expected, field).data, rtol=1e-6,
                                   equal_nan=True, err_msg=field)
    np.testing.assert_array_equal(written.timelag.mask, expected.timelag.mask)
    assert written.timelag.meta["lagnorm"] == "overlap"
    assert "sunpy-timelag run: register=False derotate=False" in written.timelag.meta["history"].splitlines()
    # the pair's figure masks the lags of chance correlations as well as the weak ones
    shown = figures[0].axes[0].get_images()[0].get_array()
    chance = written.significance.data > 0.05
    assert chance.any() and np.all(np.ma.getmaskarray(shown)[chance])


def timelag_maps_of(cubes, **options):
    from sunpy_timelag import timelag_maps

    return timelag_maps(cubes, lag_bounds=[-5, 5] * u.min, uncertainty=True, significance=True, **options)[335, 211]


def test_a_rerun_leaves_only_its_own_maps(small, tmp_path, capsys):
    from sunpy_timelag import TimelagResults

    assert main(["run", pattern_of(small), "--pairs", "335-211", "--uncertainty", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "uncertainty_335_211.fits").exists()
    assert main(["run", pattern_of(small), "--pairs", "335-211", "--out", str(tmp_path)]) == 0
    assert not (tmp_path / "uncertainty_335_211.fits").exists()
    assert TimelagResults.load(tmp_path)[335, 211].uncertainty is None


@pytest.mark.parametrize("value", ["1.5", "nan", "high"])
def test_min_correlation_outside_minus_one_to_one_is_refused(value, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "x/{channel}/*.fits", "--pairs", "335-211", "--min-correlation", value])
    assert exit_.value.code == 2
    assert f"--min-correlation takes a number in [-1, 1], e.g. 0.2; got '{value}'" in capsys.readouterr().err

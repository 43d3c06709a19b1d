"""
Atomic output (`sunpy_timelag.io.write`): writers killed at random moments, recovery, locks, and stores
that are never replaced by mistake.
"""
import os
import signal
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import astropy.units as u
import dask.array as da
import numpy as np
import pytest
from astropy.time import Time
from astropy.wcs import WCS

from sunpy_timelag.exceptions import InterruptedWriteWarning, OutputPathError
from sunpy_timelag.io.write import lock_folder, recover, write_atomically
from sunpy_timelag.io.zarr import read_cube_store, write_cube_store

ROOT = Path(__file__).resolve().parent.parent
N_FRAMES = 8
PAYLOAD = 1 << 20  # bytes of a generation file, written in 16 pieces


# ---- generations: outputs whose completeness can be checked --------------------------------------


def write_file_generation(path, generation):
    def write(temporary):
        with open(temporary, "wb") as stream:
            stream.write(f"generation {generation}\n".encode())
            for _ in range(16):
                stream.write(bytes([generation % 251]) * (PAYLOAD // 16))
                stream.flush()

    write_atomically(path, write)


def file_generation(path):
    """The generation of a complete generation file (an assertion fails on a partial one)."""
    first, _, payload = Path(path).read_bytes().partition(b"\n")
    generation = int(first.split()[1])
    assert payload == bytes([generation % 251]) * PAYLOAD, f"{path} holds a partial generation {generation}"
    return generation


def write_store_generation(path, generation):
    celestial = WCS(naxis=2)
    celestial.wcs.ctype = ["HPLN-TAN", "HPLT-TAN"]
    celestial.wcs.cunit = ["arcsec", "arcsec"]
    celestial.wcs.cdelt = [0.6, 0.6]
    write_cube_store(
        path, da.full((N_FRAMES, 32, 32), generation, dtype="f4", chunks=(1, 32, 32)),
        time=Time("2012-01-01T00:00:00") + np.arange(N_FRAMES) * 12 * u.s, headers=[{"GEN": generation}] * N_FRAMES,
        exposure_time=np.full(N_FRAMES, 2.0) * u.s, wavelength=171 * u.AA, unit=u.DN, celestial_wcs=celestial,
        overwrite=True,
    )


def store_generation(path):
    """The generation of a complete generation store, read (and so recovered) as from_zarr reads it."""
    stored = read_cube_store(path)
    generation = stored.headers[0]["GEN"]
    assert [header["GEN"] for header in stored.headers] == [generation] * N_FRAMES
    np.testing.assert_array_equal(stored.data.compute(), generation, err_msg=f"{path}: partial generation")
    return generation


WRITERS = {"file": write_file_generation, "store": write_store_generation}

# A process that imports once, then for each command forks a child writing generation after generation
# of one path, and kills it (SIGKILL) after the given delay, or lets it crash itself between the two
# renames of a store's replacement.
HELPER = f"""
import os, signal, sys, time
from pathlib import Path
sys.path.insert(0, {str(ROOT)!r})
from tests.test_write import WRITERS
import zarr  # imported once here, not by each writer
print("ready", flush=True)
for line in sys.stdin:
    kind, path, first, delay = line.split()
    pid = os.fork()
    if pid == 0:
        try:
            if delay == "between-renames":
                rename = os.rename
                def rename_then_crash(source, destination):
                    rename(source, destination)
                    if Path(source) == Path(path):  # the old store moved aside, the new one not yet in place
                        os.kill(os.getpid(), signal.SIGKILL)
                os.rename = rename_then_crash
            generation = int(first)
            while True:
                WRITERS[kind](path, generation)
                generation += 1
        finally:
            os._exit(1)
    if delay != "between-renames":
        time.sleep(float(delay))
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    print("killed", flush=True)
"""


@pytest.fixture(scope="module")
def killer():
    process = subprocess.Popen([sys.executable, "-c", HELPER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True, cwd=ROOT)
    assert process.stdout.readline() == "ready\n"

    def kill_writer(kind, path, first_generation, delay):
        process.stdin.write(f"{kind} {path} {first_generation} {delay}\n")
        process.stdin.flush()
        assert process.stdout.readline() == "killed\n"

    yield kill_writer
    process.stdin.close()
    process.wait(timeout=10)


def leftovers(path):
    return sorted(set(os.listdir(path.parent)) - {path.name})


def anything_to_resolve(path):
    """Whether a killed writer left more than a staging folder with an empty lock file (killed as it began)."""
    staging = path.with_name(f".{path.name}.partial")
    return staging.exists() and any(entry.name != "lock" or entry.stat().st_size for entry in staging.iterdir())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize("kind", ["file", "store"])
def test_a_killed_writer_leaves_the_old_or_the_new_output(killer, tmp_path, kind):
    """SIGKILL at random moments: the path holds a complete generation, and the next write leaves nothing else."""
    write, generation_of = WRITERS[kind], {"file": file_generation, "store": store_generation}[kind]
    path = tmp_path / f"output.{'bin' if kind == 'file' else 'zarr'}"
    write(path, 0)
    rng = np.random.default_rng(12)
    for round_ in range(1, 6):
        before = generation_of(path)
        first = 1000 * round_
        killer(kind, path, first, rng.uniform(0.0, 0.3))  # a first store takes ~0.2 s, later ones 30 ms
        left = anything_to_resolve(path)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            recover(path)
            generation = generation_of(path)
        assert generation == before or generation >= first  # the old output or one of the new ones, complete
        interrupted = [w for w in caught if issubclass(w.category, InterruptedWriteWarning)]
        assert bool(interrupted) == left, [str(w.message) for w in caught]
        write(path, first - 1)
        assert generation_of(path) == first - 1 and leftovers(path) == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize("recover_by", ["read", "write"])
def test_a_replacement_killed_between_its_renames_is_completed(killer, tmp_path, recover_by):
    path = tmp_path / "cube.zarr"
    write_store_generation(path, 1)
    killer("store", path, 2, "between-renames")
    assert not path.exists() and leftovers(path) == [".cube.zarr.partial"]  # the state the crash left
    if recover_by == "read":
        message = r"cube.zarr \(process \d+ on .*\) was interrupted: completed its replacement"
        with pytest.warns(InterruptedWriteWarning, match=message):
            assert store_generation(path) == 2  # the new store was complete: it is put in place
    else:
        with pytest.warns(InterruptedWriteWarning, match="completed its replacement"):
            write_store_generation(path, 3)
        assert store_generation(path) == 3
    assert leftovers(path) == []


def test_a_write_that_fails_changes_nothing(tmp_path):
    path = tmp_path / "map.fits"
    write_file_generation(path, 7)

    def fail(temporary):
        Path(temporary).write_bytes(b"half a map")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomically(path, fail)
    assert file_generation(path) == 7 and leftovers(path) == []


def test_a_folder_replaces_a_file_and_back(tmp_path):
    path = tmp_path / "output"
    write_file_generation(path, 1)
    write_atomically(path, lambda temporary: (os.mkdir(temporary), Path(temporary, "inside").write_text("x")))
    assert (path / "inside").read_text() == "x" and leftovers(path) == []
    write_file_generation(path, 2)
    assert file_generation(path) == 2 and leftovers(path) == []  # no hidden ".old" of either kind


def test_inputs_are_never_overwritten(tmp_path):
    path = tmp_path / "frame.fits"
    path.write_bytes(b"input")
    with pytest.raises(OutputPathError, match="frame.fits: it is one of the inputs"):
        write_atomically(tmp_path / "." / "frame.fits", lambda temporary: None, protected=[str(path)])
    assert path.read_bytes() == b"input"


def test_writers_of_one_path_take_turns(tmp_path):
    path = tmp_path / "map.fits"
    started, release, order = threading.Event(), threading.Event(), []

    def slow(temporary):
        started.set()
        release.wait(5)
        order.append("first")
        Path(temporary).write_text("first")

    def fast(temporary):
        order.append("second")
        Path(temporary).write_text("second")

    first = threading.Thread(target=write_atomically, args=(path, slow))
    first.start()
    started.wait(5)
    second = threading.Thread(target=write_atomically, args=(path, fast))
    second.start()
    second.join(0.3)
    assert second.is_alive() and order == []  # waits for the first writer
    release.set()
    first.join(5)
    second.join(5)
    assert order == ["first", "second"] and path.read_text() == "second" and leftovers(path) == []


def test_a_folder_lock_refuses_a_second_holder_and_takes_over_from_a_killed_one(tmp_path):
    with lock_folder(tmp_path) as earlier:
        assert earlier is None
        busy = rf"{tmp_path.name} is in use by another process \(process {os.getpid()} on "
        with pytest.raises(OutputPathError, match=busy):
            with lock_folder(tmp_path):
                pass
    assert os.listdir(tmp_path) == []
    killed = subprocess.Popen(
        [sys.executable, "-c", "import os, signal\nfrom sunpy_timelag.io.write import lock_folder\n"
         f"with lock_folder({str(tmp_path)!r}):\n    os.kill(os.getpid(), signal.SIGKILL)"], cwd=ROOT)
    assert killed.wait(10) == -signal.SIGKILL and os.listdir(tmp_path) == [".sunpy-timelag.lock"]
    with lock_folder(tmp_path) as earlier:
        assert earlier["pid"] == killed.pid  # the killed holder is recognised, its lock taken over
    assert os.listdir(tmp_path) == []


# ---- Zarr stores: nothing but a store is ever replaced -----------------------------------------------


def test_to_zarr_never_replaces_what_is_not_its_store(tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(OutputPathError, match=r"results is a folder but not a cube store.*shutil.rmtree"):
        write_store_generation(folder, 1)
    assert (folder / "notes.txt").read_text() == "keep me"
    plain = tmp_path / "table.csv"
    plain.write_text("a,b")
    with pytest.raises(OutputPathError, match=r"table.csv is a file but not a cube store.*os.remove"):
        write_store_generation(plain, 1)
    assert plain.read_text() == "a,b" and sorted(os.listdir(tmp_path)) == ["results", "table.csv"]
    empty = tmp_path / "empty.zarr"
    empty.mkdir()
    write_store_generation(empty, 4)  # an empty folder holds nothing to lose
    assert store_generation(empty) == 4


def test_from_zarr_of_a_missing_store_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="no Zarr store at .*missing.zarr"):
        read_cube_store(tmp_path / "missing.zarr")

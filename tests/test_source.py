"""
Region-aware reading (`sunpy_timelag.io.source`): a cube read from files reads only the pixels it needs,
in the layout the analysis needs, and gives the same numbers as the operations on whole frames.
"""
import astropy.units as u
import numpy as np
import pytest
import sunpy.map
from astropy.io import fits
from astropy.time import Time

from sunpy_timelag import TimelagCube, lags, timelag_maps
from sunpy_timelag.data import make_synthetic_observation

SHAPE = (512, 512)


def write_frames(directory, compressed, n_frames=4):
    """Frames of random int16 pixels with AIA-like headers, plain or Rice tile-compressed in HDU 1."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n_frames):
        header = fits.Header({
            "TELESCOP": "SDO/AIA", "INSTRUME": "AIA_3", "WAVELNTH": 171, "WAVEUNIT": "angstrom",
            "CTYPE1": "HPLN-TAN", "CTYPE2": "HPLT-TAN", "CUNIT1": "arcsec", "CUNIT2": "arcsec",
            "CDELT1": 2.4, "CDELT2": 2.4, "CRPIX1": 256.5, "CRPIX2": 256.5, "CRVAL1": 0.0, "CRVAL2": 0.0,
            "DSUN_OBS": 1.48e11, "HGLN_OBS": 0.0, "HGLT_OBS": 0.0, "EXPTIME": 2.0 + 0.1 * i,
            "T_OBS": (Time("2011-02-15T00:00:00") + 12 * i * u.s).isot,
        })
        data = rng.integers(-100, 3000, SHAPE).astype(np.int16)
        path = directory / f"frame{i}.fits"
        if compressed:
            fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, header, compression_type="RICE_1")]).writeto(path)
        else:
            fits.writeto(path, data, header)
        paths.append(path)
    return paths


def bytes_read(function):
    """
    Bytes this process reads (``rchar`` of ``/proc/self/io``) while ``function`` runs, and its result.

    ``function`` runs once before, so that what its first call imports is not counted.
    """
    def rchar():
        with open("/proc/self/io") as io:
            return int(next(line for line in io if line.startswith("rchar")).split()[1])

    function()
    before = rchar()
    result = function()
    return rchar() - before, result


@pytest.mark.parametrize("compressed", [False, True])
def test_a_region_reads_only_its_rows_or_tiles(tmp_path, compressed):
    paths = write_frames(tmp_path, compressed)
    cube = TimelagCube.from_files(paths)
    region = cube.normalize_exposure()[:, 200:264, 100:300]  # 64 of 512 rows
    n_bytes, data = bytes_read(lambda: region.data.compute(scheduler="sync"))
    rows_spanned = 64 * SHAPE[1] * 2 * len(paths)  # int16
    if compressed:  # the tiles touched, with their share of the tile table: far from the whole files
        assert n_bytes < 0.35 * sum(path.stat().st_size for path in paths)
    else:
        assert n_bytes <= 1.3 * rows_spanned
    for i, path in enumerate(paths):
        frame = sunpy.map.Map(path)
        np.testing.assert_allclose(data[i], frame.data[200:264, 100:300] / frame.exposure_time.to_value(u.s),
                                   rtol=1e-6)


def test_the_operations_give_the_numbers_of_whole_frames(tmp_path):
    cube = TimelagCube.from_files(write_frames(tmp_path, compressed=False))
    through_files = cube[1:, 64:320].normalize_exposure()[:, 10:, 32:480].rebin((1, 2, 4))[:2, 3:100]
    in_memory = cube.as_numpy()  # the same values, not read through the files' source
    expected = in_memory[1:, 64:320].normalize_exposure()[:, 10:, 32:480].rebin((1, 2, 4))[:2, 3:100]
    assert "fits-window" in through_files.data.name and "fits-window" not in expected.data.name
    np.testing.assert_allclose(through_files.data.compute(), expected.data.compute(), rtol=1e-12)
    assert through_files.data.dtype == expected.data.dtype
    assert (through_files.time == expected.time).all()


def test_series_of_frames_stored_differently_equal_astropy_s_values(tmp_path):
    # 70 frames (more than one group of frames read together), stored with two BSCALE/BZERO and BLANK, one of them
    # tile-compressed: the series read from the files equals astropy's scaled data, normalised and binned
    rng = np.random.default_rng(1)
    paths, expected = [], []
    for i in range(70):
        stored = rng.integers(-1000, 1000, (16, 16)).astype(np.int16)
        stored[i % 16, 3] = -32768
        header = fits.Header({"TELESCOP": "SDO/AIA", "INSTRUME": "AIA_3", "WAVELNTH": 171, "WAVEUNIT": "angstrom",
                              "CTYPE1": "HPLN-TAN", "CTYPE2": "HPLT-TAN", "CUNIT1": "arcsec", "CUNIT2": "arcsec",
                              "CDELT1": 2.4, "CDELT2": 2.4, "CRPIX1": 8.5, "CRPIX2": 8.5, "CRVAL1": 0.0, "CRVAL2": 0.0,
                              "DSUN_OBS": 1.48e11, "HGLN_OBS": 0.0, "HGLT_OBS": 0.0, "EXPTIME": 1.0 + 0.01 * i,
                              "T_OBS": (Time("2011-02-15T00:00:00") + 12 * i * u.s).isot})
        path = tmp_path / f"frame{i:02d}.fits"
        fits.writeto(path, stored, header)
        scaling = {"BSCALE": 0.5, "BZERO": 100.0} if i % 3 else {"BSCALE": 0.25, "BZERO": -7.0}
        for keyword, value in {**scaling, "BLANK": -32768}.items():  # the stored integers kept, their meaning set
            fits.setval(path, keyword, value=value)
        with fits.open(path) as hdulist:
            values = hdulist[0].data.astype(np.float32)
        assert np.isnan(values[i % 16, 3]) and np.nanmax(np.abs(values)) > 200
        if i == 33:  # the same values, tile-compressed (lossless) in HDU 1
            compressed = fits.CompImageHDU(values, header, compression_type="GZIP_1", quantize_level=0)
            fits.HDUList([fits.PrimaryHDU(), compressed]).writeto(path, overwrite=True)
        expected.append(values / np.float32(header["EXPTIME"]))
        paths.append(path)
    cube = TimelagCube.from_files(paths).normalize_exposure()
    expected = np.array(expected)
    np.testing.assert_allclose(cube._series_data().compute(), expected, rtol=1e-6, equal_nan=True)
    binned = expected.reshape(70, 8, 2, 8, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(cube.rebin((1, 2, 2))._series_data().compute(), binned, rtol=1e-6, equal_nan=True)


def test_whole_series_are_read_in_few_tasks(tmp_path):
    cube = TimelagCube.from_files(write_frames(tmp_path, compressed=False, n_frames=6))
    series = cube.normalize_exposure()._series_data()
    assert series.chunks[0] == (6,)  # whole time series per chunk
    assert len(series.__dask_graph__()) == series.npartitions  # one task a block, no per-frame tasks
    np.testing.assert_allclose(series.compute(), cube.as_numpy().normalize_exposure().data.compute(), rtol=1e-7)


def test_timelag_maps_read_through_the_files_equal_those_in_memory(tmp_path):
    observation = make_synthetic_observation(tmp_path, channels=(335, 171), duration=40 * u.min, shape=(32, 32))
    cubes = [TimelagCube.from_files(observation.files[c]).normalize_exposure()[:, 4:28, 2:30] for c in (335, 171)]
    through_files = timelag_maps(cubes, lag_bounds=[-20, 20] * u.min)[335, 171]
    in_memory = timelag_maps([cube.persist() for cube in cubes], lag_bounds=[-20, 20] * u.min)[335, 171]
    np.testing.assert_allclose(through_files.timelag.data, in_memory.timelag.data, rtol=1e-9, equal_nan=True)
    np.testing.assert_allclose(through_files.correlation.data, in_memory.correlation.data, rtol=1e-9)


def test_a_field_analysed_band_by_band_equals_it_in_memory_on_threads_and_processes(tmp_path, monkeypatch):
    # bands of at most 128 kB: the 32 x 32 field of 200 frames is read and correlated in bands of a few rows,
    # as a field larger than memory is, a few bands at a time
    observation = make_synthetic_observation(tmp_path, channels=(335, 171), duration=40 * u.min, shape=(32, 32))
    cubes = [TimelagCube.from_files(observation.files[c]).normalize_exposure() for c in (335, 171)]
    in_memory = timelag_maps([cube.persist() for cube in cubes], lag_bounds=[-20, 20] * u.min)[335, 171]
    assert cubes[0].persist().data.numblocks == (1, 1, 1)
    monkeypatch.setattr(lags, "_CHUNK_BYTES", (2**17, 2**17))
    bands = cubes[0]._series_data().numblocks
    assert bands[0] == bands[2] == 1 and bands[1] >= 6
    banded = {"threads": timelag_maps(cubes, lag_bounds=[-20, 20] * u.min)[335, 171]}
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    with cluster, distributed.Client(cluster):
        banded["processes"] = timelag_maps(cubes, lag_bounds=[-20, 20] * u.min)[335, 171]
    for maps in banded.values():
        np.testing.assert_allclose(maps.timelag.data, in_memory.timelag.data, rtol=1e-9, equal_nan=True)
        np.testing.assert_allclose(maps.correlation.data, in_memory.correlation.data, rtol=1e-9)


def test_each_band_is_read_resampled_and_correlated_in_one_task(tmp_path, monkeypatch):
    # the channels are observed seconds apart: both are interpolated onto the common grid; a band's reads, its
    # interpolation and its correlation fuse into one task, so that no band moves between workers of a cluster
    import dask

    from sunpy_timelag import analysis

    monkeypatch.setattr(lags, "_CHUNK_BYTES", (2**15, 2**15))
    observation = make_synthetic_observation(tmp_path, channels=(335, 171), duration=20 * u.min, shape=(32, 32))
    cubes = [TimelagCube.from_files(observation.files[c]).normalize_exposure() for c in (335, 171)]
    (a, b), _, cadence = analysis._aligned(cubes)
    assert a.numblocks == b.numblocks and a.numblocks[1] >= 6
    (lag,) = dask.optimize(lags.timelag(a, b, cadence, lag_bounds=(-600, 600)).lag)
    assert len(lag.__dask_graph__()) == 2 * a.numblocks[1]  # per band: the fused task and its slice of the lag map


def test_derotate_reads_only_the_window_of_each_frame(tmp_path):
    paths = write_frames(tmp_path, compressed=False)
    cube = TimelagCube.from_files(paths)
    corner = cube.celestial_wcs.pixel_to_world(200, 300)
    derotated = cube.derotate(corner, width=100 * u.arcsec, height=60 * u.arcsec)
    n_bytes, data = bytes_read(lambda: derotated.data.compute(scheduler="sync"))
    assert n_bytes < 0.2 * sum(path.stat().st_size for path in paths)  # a band of rows of each file
    in_memory = cube.as_numpy().derotate(corner, width=100 * u.arcsec, height=60 * u.arcsec)
    np.testing.assert_array_equal(data, in_memory.data.compute())

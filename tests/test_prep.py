"""
Tests of the cube's preparation (`TimelagCube.deconvolve`, `register`, `prepare`) and persistence
(`to_zarr`, `from_zarr`): laziness, agreement with aiapy frame by frame, coordinates, atomic writes.
"""
import importlib
import os

import aiapy.calibrate
import astropy.units as u
import numpy as np
import pytest
import sunpy.map
from astropy.io import fits

from sunpy_timelag import TimelagCube, backend
from sunpy_timelag.aia import Deconvolver, psf
from sunpy_timelag.io.loader import FITSFrameLoader

deconvolve_module = importlib.import_module("sunpy_timelag.aia.deconvolve")


@pytest.fixture
def frames(aia_frames):
    """The six test frames, the third rolled by 1 degree and shifted by 0.6 pixel."""
    fits.setval(aia_frames[2], "CROTA2", value=1.0)
    fits.setval(aia_frames[2], "CRPIX2", value=fits.getval(aia_frames[2], "CRPIX2") + 0.6)
    return aia_frames


@pytest.fixture
def reads(monkeypatch):
    """The frames read from disk, in the order they are read."""
    calls = []
    original = FITSFrameLoader.read
    monkeypatch.setattr(FITSFrameLoader, "read", lambda self, *window: calls.append(self) or original(self, *window))
    return calls


@pytest.fixture(scope="module")
def kernel():
    """A small PSF (128 x 128, few diffraction orders) keeps the deconvolution quick."""
    return psf(171, size=128, diffraction_orders=np.arange(-3, 4))


def float_map(path):
    """The frame as a float32 Map: the cube registers integer frames as float32."""
    smap = sunpy.map.Map(path)
    return sunpy.map.Map(smap.data.astype(np.float32), smap.meta)


def test_register_is_lazy_and_matches_aiapy_frame_by_frame(frames, reads):
    cube = TimelagCube.from_files(frames, pointing_tolerance=3)
    registered = cube.register()
    assert reads == []  # nothing read before compute
    assert registered.data.chunks[0] == (1,) * len(frames) and registered.data.dtype == np.float32
    data = registered.data.compute()
    for i, path in enumerate(frames):
        reference = aiapy.calibrate.register(float_map(path))
        assert np.abs(data[i] - reference.data).max() < 1e-6 * np.abs(reference.data).max()
        # every frame lands on aiapy's level-1.5 grid, the same for all
        for key in ("crpix1", "crpix2", "cdelt1", "cdelt2", "crval1", "crval2", "lvl_num", "r_sun"):
            assert registered.headers[i][key] == pytest.approx(reference.meta[key], rel=1e-12)
    assert abs(registered.headers[2]["pc1_2"]) < 1e-15 and "crota2" not in registered.headers[2]
    first = aiapy.calibrate.register(float_map(frames[0]))
    world = registered.wcs.pixel_to_world(17, 90, 3)
    assert world[0].separation(first.pixel_to_world(17 * u.pix, 90 * u.pix)) < 1e-6 * u.arcsec
    assert abs((world[1] - cube.time[3]).to_value(u.s)) < 1e-6
    assert registered.time.isot.tolist() == cube.time.isot.tolist()
    np.testing.assert_array_equal(registered.exposure_time, cube.exposure_time)


def test_deconvolve_is_lazy_and_computes_the_psf_once(aia_frames, reads, kernel, monkeypatch):
    computed = []
    monkeypatch.setattr(deconvolve_module, "channel_psf", lambda channel: computed.append(channel) or kernel)
    cube = TimelagCube.from_files(aia_frames)
    deconvolved = cube.deconvolve(iterations=3)
    assert reads == [] and computed == []
    data = deconvolved.data.compute(scheduler="threads")
    assert computed == [cube.wavelength]  # one PSF for all the frames of the channel
    expected = Deconvolver(kernel, iterations=3)
    for i in range(len(aia_frames)):
        np.testing.assert_allclose(data[i], expected(cube.data[i].compute()), rtol=1e-6)
    assert deconvolved.unit == cube.unit and deconvolved.headers == cube.headers


def test_prepare_is_aiapys_level_one_and_a_half_per_second(aia_frames, kernel, monkeypatch):
    cube = TimelagCube.from_files(aia_frames)
    prepared = cube.prepare()
    assert prepared.unit == u.DN / u.s
    data = prepared.data.compute()
    for i, path in enumerate(aia_frames):  # aiapy's register of each frame, divided by its EXPTIME
        reference = aiapy.calibrate.register(float_map(path))
        expected = reference.data / reference.exposure_time.to_value(u.s)
        assert np.abs(data[i] - expected).max() < 1e-6 * np.abs(expected).max()
    # with deconvolution: the PSF acts on the level-1 frames, before registration
    monkeypatch.setattr(deconvolve_module, "channel_psf", lambda channel: kernel)
    deconvolved = cube.prepare(deconvolve=True, iterations=2).data.compute()
    for i, path in enumerate(aia_frames[:2]):
        level1 = float_map(path)
        sharpened = sunpy.map.Map(Deconvolver(kernel, iterations=2)(level1.data), level1.meta)
        reference = aiapy.calibrate.register(sharpened)
        expected = reference.data / reference.exposure_time.to_value(u.s)
        assert np.abs(deconvolved[i] - expected).max() < 1e-5 * np.abs(expected).max()
    with pytest.raises(ValueError, match="deconvolve the level-1 frames"):  # the other order is refused
        cube.register().deconvolve(psf=kernel)


def test_register_refuses_cropped_or_rebinned_cubes(aia_frames):
    cube = TimelagCube.from_files(aia_frames)
    for changed in (cube.submap([10, 10] * u.pix, top_right=[100, 100] * u.pix), cube.rebin((1, 2, 2))):
        with pytest.raises(ValueError, match="own pixels"):
            changed.register()
    assert cube[1:4].register().data.shape == (3, 128, 128)  # slicing in time keeps the frames' pixels


def assert_same_header(restored, original):
    for key, value in dict(original).items():  # one entry per keyword: repeated COMMENT cards together
        if isinstance(value, float) and np.isnan(value):
            assert np.isnan(restored[key]), key
        elif value is None or isinstance(value, str | int | float | bool):
            assert restored[key] == value, key
        else:  # FITS commentary cards come back as one string of lines, as sunpy keeps them
            assert restored[key] == str(value), key


@pytest.mark.parametrize("registered", [False, True])
def test_zarr_round_trip(aia_frames, tmp_path, registered):
    cube = TimelagCube.from_files(aia_frames)
    cube = cube.register() if registered else cube
    path = cube.to_zarr(tmp_path / "cube.zarr")
    restored = TimelagCube.from_zarr(path)
    assert isinstance(restored, TimelagCube)
    assert restored.data.chunks == cube.data.rechunk((1, -1, -1)).chunks and restored.data.dtype == cube.data.dtype
    np.testing.assert_array_equal(restored.data.compute(), cube.data.compute())
    assert np.abs((restored.time - cube.time).to_value(u.s)).max() < 1e-6
    np.testing.assert_array_equal(restored.exposure_time, cube.exposure_time)
    assert restored.wavelength == cube.wavelength and restored.unit == cube.unit
    for key in ("crpix", "cdelt", "crval", "pc"):  # to the cube's own round trip through its gWCS (1e-10 pixel)
        np.testing.assert_allclose(getattr(restored.celestial_wcs.wcs, key), getattr(cube.celestial_wcs.wcs, key),
                                   rtol=1e-10, atol=1e-12)
    for restored_header, header in zip(restored.headers, cube.headers, strict=True):
        assert_same_header(restored_header, header)
    for pixel in [(0, 0, 0), (100.5, 7.25, 4)]:
        ours, theirs = restored.wcs.pixel_to_world(*pixel), cube.wcs.pixel_to_world(*pixel)
        assert ours[0].separation(theirs[0]) < 1e-6 * u.arcsec
        assert abs((ours[1] - theirs[1]).to_value(u.s)) < 1e-6
    sub = restored.normalize_exposure().submap([20, 10] * u.pix, top_right=[59, 69] * u.pix)
    expected = cube.normalize_exposure().submap([20, 10] * u.pix, top_right=[59, 69] * u.pix)
    np.testing.assert_allclose(sub.data.compute(), expected.data.compute())


def failing_cube(cube, frame):
    """``cube`` whose computation fails at ``frame``, as a crash midway through a write would."""
    def fail(block, block_info=None):
        if block_info[0]["chunk-location"][0] == frame:
            raise RuntimeError("disk full")
        return block
    return cube._new_instance(data=cube.data.map_blocks(fail, dtype=cube.data.dtype))


def test_zarr_write_is_atomic(aia_frames, tmp_path):
    cube = TimelagCube.from_files(aia_frames)
    target = tmp_path / "out" / "cube.zarr"
    with pytest.raises(RuntimeError, match="disk full"):
        failing_cube(cube, 3).to_zarr(target)
    assert not target.exists() and os.listdir(target.parent) == []  # no half-written store, no leftovers
    cube.to_zarr(target)
    with pytest.raises(FileExistsError):
        cube.to_zarr(target)
    with pytest.raises(RuntimeError, match="disk full"):
        failing_cube(cube.normalize_exposure(), 4).to_zarr(target, overwrite=True)
    assert os.listdir(target.parent) == ["cube.zarr"]
    np.testing.assert_array_equal(TimelagCube.from_zarr(target).data.compute(), cube.data.compute())  # intact
    cube.normalize_exposure().to_zarr(target, overwrite=True)
    assert TimelagCube.from_zarr(target).unit == u.DN / u.s and os.listdir(target.parent) == ["cube.zarr"]


def test_from_zarr_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        TimelagCube.from_zarr(tmp_path / "missing.zarr")
    zarr = pytest.importorskip("zarr")
    zarr.open_array(str(tmp_path / "other.zarr"), mode="w", shape=(2, 3, 4), dtype="f4")
    with pytest.raises(ValueError, match="not a cube store"):
        TimelagCube.from_zarr(tmp_path / "other.zarr")


@pytest.mark.gpu
def test_prep_chain_stays_on_the_gpu(aia_frames, kernel):
    cupy = pytest.importorskip("cupy")
    if not backend.cupy_available():
        pytest.skip("no GPU")
    cube = TimelagCube.from_files(aia_frames)
    on_gpu = cube.as_cupy()
    prepared = on_gpu.deconvolve(psf=kernel, iterations=3).register()
    assert backend.is_cupy_array(prepared.data)
    result = prepared.data.compute()
    assert isinstance(result, cupy.ndarray)
    expected = cube.deconvolve(psf=kernel, iterations=3).register().data.compute()
    assert np.abs(cupy.asnumpy(result) - expected).max() < 1e-5 * np.abs(expected).max()

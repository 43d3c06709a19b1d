"""Coordinates, metadata and operations of `TimelagCube`, checked against sunpy Maps and ndcube."""
import os
import pickle

import astropy.units as u
import numpy as np
import pytest
import sunpy.map
from astropy.coordinates import SkyCoord
from astropy.time import Time
from ndcube import NDCube

from sunpy_timelag import TimelagCube


@pytest.fixture
def cube(aia_frames):
    return TimelagCube.from_files(aia_frames)


@pytest.fixture
def maps(aia_frames):
    return [sunpy.map.Map(path) for path in aia_frames]


def assert_same_sky(first, second, atol=1e-6 * u.arcsec):
    assert u.allclose(first.Tx, second.Tx, atol=atol) and u.allclose(first.Ty, second.Ty, atol=atol)


def test_properties(cube, maps):
    assert cube.data.shape == (6, 128, 128)
    assert (cube.time == Time([m.meta["t_obs"].rstrip("Z") for m in maps])).all()
    assert cube.wavelength == 171 * u.AA and cube.channel == 171
    assert u.allclose(cube.exposure_time, [m.exposure_time for m in maps])
    assert cube.unit == maps[0].unit
    assert [h["T_OBS"] for h in cube.headers] == [m.meta["t_obs"] for m in maps]
    assert cube.observer.separation_3d(maps[0].observer_coordinate) < 1 * u.m


def test_wcs_matches_sunpy_maps(cube, maps):
    x, y = np.array([0, 17.5, 127]), np.array([0, 64, 101.25])
    for t in (0, 3, 5):
        sky, time = cube.wcs.pixel_to_world(x, y, np.full(3, t))
        assert_same_sky(sky, maps[0].pixel_to_world(x * u.pix, y * u.pix))
        assert (time == cube.time[t]).all()
    # frames point within the tolerance of the first
    assert_same_sky(cube.wcs.pixel_to_world(5, 5, 5)[0], maps[5].pixel_to_world(5.05 * u.pix, 5 * u.pix))
    # world -> pixel inverts, the time axis included (between frames too)
    world = cube.wcs.pixel_to_world(40.0, 30.0, 2.5)
    np.testing.assert_allclose(cube.wcs.world_to_pixel(*world), (40, 30, 2.5), atol=1e-6)
    assert world[1] == cube.time[2] + 6 * u.s


def test_axis_world_coords(cube, maps):
    sky, = cube.axis_world_coords(1, 2)
    assert_same_sky(sky, maps[0].pixel_to_world(*np.meshgrid(np.arange(128), np.arange(128)) * u.pix))
    time, = cube.axis_world_coords("time")
    assert (time == cube.time).all()


def test_slicing_keeps_coordinates_and_metadata(cube, maps):
    sliced = cube[1:5, 10:40, 20:100]
    assert isinstance(sliced, TimelagCube)
    assert (sliced.time == cube.time[1:5]).all()
    assert u.allclose(sliced.exposure_time, cube.exposure_time[1:5])
    assert sliced.headers == cube.headers[1:5]
    assert_same_sky(sliced.wcs.pixel_to_world(0, 0, 0)[0], maps[0].pixel_to_world(20 * u.pix, 10 * u.pix))
    frame = sliced.to_maps()[0]
    assert_same_sky(frame.pixel_to_world(3 * u.pix, 4 * u.pix), maps[0].pixel_to_world(23 * u.pix, 14 * u.pix))
    np.testing.assert_array_equal(frame.data, maps[1].data[10:40, 20:100])


def test_crop(cube, maps):
    corners = maps[0].pixel_to_world([30, 80] * u.pix, [20, 70] * u.pix)
    cropped = cube.crop([corners[0], None], [corners[1], None])
    assert cropped.data.shape == (6, 51, 51)
    assert_same_sky(cropped.wcs.pixel_to_world(0, 0, 0)[0], corners[0])
    assert (cropped.time == cube.time).all()


def test_submap_matches_sunpy(cube, maps):
    bottom_left = SkyCoord(-900 * u.arcsec, -700 * u.arcsec, frame=maps[0].coordinate_frame)
    top_right = SkyCoord(-500 * u.arcsec, -300 * u.arcsec, frame=maps[0].coordinate_frame)
    expected = maps[0].submap(bottom_left, top_right=top_right)
    for sub in (cube.submap(bottom_left, top_right=top_right),
                cube.submap(bottom_left, width=400 * u.arcsec, height=400 * u.arcsec)):
        assert sub.data.shape[1:] == expected.data.shape
        np.testing.assert_array_equal(sub.data[0].compute(), expected.data)
        assert_same_sky(sub.wcs.pixel_to_world(0, 0, 0)[0], expected.pixel_to_world(0 * u.pix, 0 * u.pix))
        assert u.allclose(sub.exposure_time, cube.exposure_time)
    pixels = cube.submap([10, 20] * u.pix, top_right=[40, 30] * u.pix)
    assert pixels.data.shape == (6, 11, 31)


def test_submap_outside_field_of_view(cube, maps):
    far = SkyCoord(3000 * u.arcsec, 3000 * u.arcsec, frame=maps[0].coordinate_frame)
    with pytest.raises(ValueError, match="entirely outside the field of view"):
        cube.submap(far, width=100 * u.arcsec, height=100 * u.arcsec)


def test_rebin(cube, maps):
    rebinned = cube.rebin((2, 4, 4))
    assert isinstance(rebinned, TimelagCube) and rebinned.data.shape == (3, 32, 32)
    data = cube.data.compute().astype(float)
    np.testing.assert_allclose(rebinned.data.compute(), data.reshape(3, 2, 32, 4, 32, 4).mean(axis=(1, 3, 5)))
    # coordinates of the bin centres
    assert_same_sky(rebinned.wcs.pixel_to_world(0, 0, 0)[0], maps[0].pixel_to_world(1.5 * u.pix, 1.5 * u.pix))
    assert (abs(rebinned.time - (cube.time[::2] + 6 * u.s)) < 1 * u.us).all()
    assert u.allclose(rebinned.exposure_time, cube.exposure_time.reshape(3, 2).mean(axis=1))
    assert rebinned.headers == cube.headers[::2]
    frame = rebinned.to_maps()[0]
    assert u.allclose(u.Quantity(frame.scale), 4 * u.Quantity(maps[0].scale))
    assert_same_sky(frame.pixel_to_world(7 * u.pix, 2 * u.pix), maps[0].pixel_to_world(29.5 * u.pix, 9.5 * u.pix))
    summed = cube.rebin((2, 1, 1), operation=np.sum)
    assert u.allclose(summed.exposure_time, cube.exposure_time.reshape(3, 2).sum(axis=1))


def test_normalize_exposure(cube, maps):
    rate = cube.normalize_exposure()
    assert rate.unit == u.DN / u.s
    np.testing.assert_allclose(rate.data[4].compute(), maps[4].data / maps[4].exposure_time.to_value(u.s), rtol=1e-6)
    with pytest.raises(ValueError, match="already a rate"):
        rate.normalize_exposure()


def test_average(cube, maps):
    average = cube.average()
    assert isinstance(average, sunpy.map.GenericMap)
    np.testing.assert_allclose(average.data, np.mean([m.data for m in maps], axis=0))
    assert_same_sky(average.pixel_to_world(10 * u.pix, 90 * u.pix), maps[0].pixel_to_world(10 * u.pix, 90 * u.pix))
    assert average.meta["date-obs"] == cube.time[0].isot and average.meta["date-end"] == cube.time[-1].isot
    assert average.wavelength == 171 * u.AA


def test_to_maps_and_back(cube, maps):
    sequence = cube.to_maps()
    assert isinstance(sequence, sunpy.map.MapSequence) and len(sequence) == 6
    for frame, original in zip(sequence, maps, strict=True):
        assert frame.wavelength == original.wavelength
        assert frame.exposure_time == original.exposure_time
        assert frame.meta["t_obs"] == Time(original.meta["t_obs"].rstrip("Z")).isot
    again = TimelagCube.from_maps(sequence)
    assert (again.time == cube.time).all()
    np.testing.assert_array_equal(again.data.compute(), cube.data.compute())
    assert_same_sky(again.wcs.pixel_to_world(9, 99, 0)[0], cube.wcs.pixel_to_world(9, 99, 0)[0])


def test_from_maps_sorts_and_checks(maps):
    cube = TimelagCube.from_maps(maps[::-1])
    assert (np.diff(cube.time.mjd) > 0).all()
    with pytest.raises(ValueError, match="maps is empty"):
        TimelagCube.from_maps([])


def test_pickle(cube):
    sub = cube[:, 5:50, 7:70].rebin((1, 3, 3))
    restored = pickle.loads(pickle.dumps(sub))
    assert (restored.time == sub.time).all()
    assert_same_sky(restored.wcs.pixel_to_world(4, 4, 1)[0], sub.wcs.pixel_to_world(4, 4, 1)[0])
    np.testing.assert_array_equal(restored.data.compute(), sub.data.compute())


def test_from_ndcube_plain(cube):
    plain = NDCube(cube.data, wcs=cube.wcs, unit=cube.unit, meta={"WAVELNTH": 171})
    with pytest.raises(ValueError, match="no EXPTIME: pass exposure_time="):
        TimelagCube.from_ndcube(plain)
    again = TimelagCube.from_ndcube(plain, exposure_time=2 * u.s)
    assert again.channel == 171 and u.allclose(again.exposure_time, 2 * u.s)
    assert (again.time == cube.time).all()
    assert_same_sky(again.wcs.pixel_to_world(100, 3, 2)[0], cube.wcs.pixel_to_world(100, 3, 2)[0], atol=1e-4 * u.arcsec)
    with pytest.raises(ValueError, match="3-D cube with time on the first array axis"):
        TimelagCube.from_ndcube(plain[0])


def test_from_dkist_dataset():
    dkist = pytest.importorskip("dkist")
    from dkist.data.test import rootdir

    dataset = dkist.load_dataset(os.path.join(rootdir, "EIT"))
    cube = TimelagCube.from_ndcube(dataset)
    assert cube.channel == 195 and cube.data.shape == dataset.data.shape
    np.testing.assert_allclose(cube.exposure_time.to_value(u.s), dataset.headers["EXPTIME"])
    for pixel in [(0, 0, 0), (100, 50, 3), (127, 127, 10)]:
        ours, theirs = cube.wcs.pixel_to_world(*pixel), dataset.wcs.pixel_to_world(*pixel)
        assert ours[0].separation(theirs[0]) < 1e-4 * u.arcsec
        assert abs(ours[1] - theirs[1]) < 1 * u.ms
    cropped = cube[:, 20:80, 30:90].rebin((1, 2, 2))
    ours = cropped.wcs.pixel_to_world(0, 0, 4)
    theirs = dataset.wcs.pixel_to_world(30.5, 20.5, 4)
    assert ours[0].separation(theirs[0]) < 1e-4 * u.arcsec
    average = cropped.average()
    assert_same_sky(average.pixel_to_world(0 * u.pix, 0 * u.pix), theirs[0], atol=1e-4 * u.arcsec)


def test_distributed_processes_compute_the_same(cube):
    distributed = pytest.importorskip("distributed")
    expected = cube.normalize_exposure().rebin((1, 2, 2)).data.compute(scheduler="threads")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        result = client.compute(cube.normalize_exposure().rebin((1, 2, 2)).data).result()
    np.testing.assert_array_equal(result, expected)


def test_normalize_exposure_needs_known_exposures(cube):
    from sunpy_timelag.io.meta import FrameMeta

    exposure = cube.exposure_time.copy()
    exposure[3] = np.nan
    unknown = cube._new_instance(meta=FrameMeta(cube.meta, exposure_time=exposure))
    with pytest.raises(ValueError, match="frame 3 .* has exposure time nan s"):
        unknown.normalize_exposure()


def test_timelag_between_channels_on_a_dkist_dataset_wcs():
    dkist = pytest.importorskip("dkist")
    from dkist.data.test import rootdir

    dataset = dkist.load_dataset(os.path.join(rootdir, "EIT"))  # 11 frames, 1 to 2 h apart
    hours = (dataset.axis_world_coords(0)[0] - dataset.axis_world_coords(0)[0][0]).to_value(u.h)
    amplitude = 1 + np.random.default_rng(2).random(dataset.data.shape[1:])
    delay = 2.0  # hours: B peaks 2 h after A

    def channel(shift, wavelength):
        pulse = np.exp(-(((hours - 5 - shift) / 2.5) ** 2))[:, np.newaxis, np.newaxis] * amplitude
        cube = NDCube(pulse, wcs=dataset.wcs, unit=u.ct)
        return TimelagCube.from_ndcube(cube, wavelength=wavelength * u.AA, exposure_time=10 * u.s)

    a, b = channel(0, 195), channel(delay, 171)
    lag = a.timelag_map(b, lag_bounds=[-4, 4] * u.h)
    # hourly samples of a 2.5 h pulse, linearly resampled: a third of a cadence is what refinement can promise
    assert np.all(np.abs(lag.data - delay * 3600) < 1200), np.abs(lag.data - delay * 3600).max()
    assert np.all(np.abs(a.timelag_map(b, lag_bounds=[-4, 4] * u.h, refine=False).data - delay * 3600) <= 3600)
    sky = dataset.wcs.pixel_to_world(17, 93, 0)[0]
    assert_same_sky(lag.pixel_to_world(17 * u.pix, 93 * u.pix), sky, atol=1e-4 * u.arcsec)

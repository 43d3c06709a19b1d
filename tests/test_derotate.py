"""
Tests of `TimelagCube.derotate` and `sunpy_timelag.rotation`: the pixel mapping against sunpy's coordinate
transforms, features placed on the rotating Sun with sunpy's `RotatedSunFrame` kept on their pixel,
agreement with sunpy's ``propagate_with_solar_surface`` + ``Map.reproject_to``, laziness and windows,
regions, reference times, metadata and errors.
"""
import functools
import pickle
import subprocess
import sys

import astropy.units as u
import dask.array as da
import numpy as np
import pytest
import sunpy.data.test
import sunpy.map
from astropy.coordinates import SkyCoord
from astropy.time import Time
from dask.core import flatten
from sunpy.coordinates import (
    Heliocentric,
    HeliographicStonyhurst,
    Helioprojective,
    RotatedSunFrame,
    get_earth,
    propagate_with_solar_surface,
    transform_with_sun_center,
)
from sunpy.map.header_helper import make_fitswcs_header

from sunpy_timelag import TimelagCube, backend, rotation
from sunpy_timelag.prep import _frame_angles, _rotation_rates, _view

REFERENCE = Time("2014-03-01T12:00:00")
HOURS = np.linspace(-3, 3, 7)  # 6 hours of frames; the middle one is at REFERENCE
SIGMA = 2.0  # pixels, of the synthetic features
PEAK = 100.0


def observer_at(time):
    """An SDO-like observer: the Earth, moved a little along a daily orbit, 30000 km closer to the Sun."""
    earth = get_earth(time)
    phase = (time - REFERENCE).to_value(u.day) * 2 * np.pi
    return SkyCoord(earth.lon + 0.003 * np.sin(phase) * u.deg, earth.lat + 0.002 * np.cos(phase) * u.deg,
                    earth.radius - 3e7 * u.m, frame=HeliographicStonyhurst, obstime=time)


def aia_header(time, shape, centre, scale=0.6, rotation_angle=0):
    """An AIA 171 header of a ``shape`` frame centred on ``centre`` (arcsec) at ``scale`` arcsec per pixel."""
    frame = Helioprojective(observer=observer_at(time), obstime=time)
    header = make_fitswcs_header(shape, SkyCoord(*centre * u.arcsec, frame=frame),
                                 scale=[scale, scale] * u.arcsec / u.pix, rotation_angle=rotation_angle * u.deg,
                                 telescope="SDO/AIA", instrument="AIA_3", wavelength=171 * u.AA,
                                 exposure=2 * u.s, unit=u.ct)
    header["t_obs"] = time.isot
    return header


def feature_points(centre, spacing=30, n=4, scale=0.6):
    """Points of the solar surface (HGS at REFERENCE) on an ``n`` x ``n`` grid around ``centre`` then."""
    offsets = (np.arange(n) - (n - 1) / 2) * spacing * scale
    tx, ty = np.meshgrid(centre[0] + offsets, centre[1] + offsets)
    frame = Helioprojective(observer=observer_at(REFERENCE), obstime=REFERENCE)
    return SkyCoord(tx.ravel() * u.arcsec, ty.ravel() * u.arcsec, frame=frame).transform_to(
        HeliographicStonyhurst(obstime=REFERENCE))


def feature_frames(points, shape, centre, hours=HOURS, scale=0.6):
    """
    One map per hour: Gaussian features where sunpy's `RotatedSunFrame` carries ``points`` by then,
    with the Sun's centre held fixed (as `propagate_with_solar_surface` does), in a field fixed on the sky.
    """
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    maps = []
    for hour in hours:
        time = REFERENCE + hour * u.h
        header = aia_header(time, shape, centre, scale)
        frame = sunpy.map.Map(np.zeros(shape, np.float32), header)
        rotated = RotatedSunFrame(lon=points.lon, lat=points.lat, base=HeliographicStonyhurst(obstime=REFERENCE),
                                  rotated_time=time)
        with transform_with_sun_center():
            x, y = frame.wcs.world_to_pixel(SkyCoord(rotated).transform_to(frame.coordinate_frame))
        data = sum(PEAK * np.exp(-((xx - xk) ** 2 + (yy - yk) ** 2) / (2 * SIGMA**2))
                   for xk, yk in zip(x, y, strict=True) if np.isfinite(xk))
        maps.append(sunpy.map.Map(data.astype(np.float32), header))
    return maps


def centroids(image, x, y, radius=7):
    """Intensity-weighted centroids of the features around pixels ``(x, y)`` (NaN where not whole)."""
    found = []
    for xk, yk in zip(x, y, strict=True):
        i, j = int(round(yk)), int(round(xk))
        window = image[max(i - radius, 0) : i + radius + 1, max(j - radius, 0) : j + radius + 1]
        if window.shape != (2 * radius + 1,) * 2 or not np.isfinite(window).all():
            found.append((np.nan, np.nan))
            continue
        yy, xx = np.mgrid[i - radius : i + radius + 1, j - radius : j + radius + 1]
        found.append(((window * xx).sum() / window.sum(), (window * yy).sum() / window.sum()))
    return np.array(found)


def region_pixels(cube, points):
    """The pixels of ``cube``'s grid where ``points`` (HGS at REFERENCE) are seen at its reference time, by sunpy."""
    frame = cube.wcs.pixel_to_world(0, 0, 0)[0].frame
    return cube.celestial_wcs.world_to_pixel(points.transform_to(frame))


CASES = {"high latitude": (-300, 400), "near the limb": (650, -450)}


@functools.cache
def features_case(case):
    """Frames of 16 features over 6 hours, and the corner (at REFERENCE) of a region that holds them."""
    centre = np.array(CASES[case])
    points = feature_points(centre)
    maps = feature_frames(points, (180, 260), centre)
    return points, maps, SkyCoord(*(centre - [45, 40]) * u.arcsec, frame=maps[3].coordinate_frame)


@pytest.fixture(params=list(CASES))
def features(request):
    """Each case of `features_case`: a region at high latitude, and one near the limb."""
    return features_case(request.param)


@pytest.fixture
def region():
    """The region at high latitude of `features_case`."""
    return features_case("high latitude")


@pytest.fixture(scope="module")
def full_disk():
    """Seven full-disk frames, 200 x 200 pixels of 10 arcsec, over 24 hours, of random values."""
    rng = np.random.default_rng(5)
    return [sunpy.map.Map(rng.random((200, 200), dtype=np.float32) + 1,
                          aia_header(REFERENCE + 4 * hour * u.h, (200, 200), (0, 0), scale=10.0)) for hour in HOURS]


# ---- the mapping ------------------------------------------------------------------------------

@pytest.mark.parametrize(("hours", "centre", "roll", "model"), [
    (3, (100, 200), 0, "howard"), (-3, (100, 200), 2, "howard"), (6, (700, 500), 1, "snodgrass"),
    (-6, (-850, -300), 0, "rigid")])
def test_mapping_matches_sunpy_transforms(hours, centre, roll, model):
    """Reference pixel -> source pixel, as sunpy maps it with propagate_with_solar_surface (and visibility)."""
    time = REFERENCE + hours * u.h
    reference = sunpy.map.Map(np.zeros((60, 80)), aia_header(REFERENCE, (60, 80), centre, scale=6.0))
    source = sunpy.map.Map(np.zeros((90, 110)), aia_header(time, (90, 110), centre, scale=5.0, rotation_angle=roll))
    rsun = reference.coordinate_frame.rsun
    y, x = (g.ravel().astype(float) for g in np.mgrid[0:60:3, 0:80:3])
    with propagate_with_solar_surface(rotation_model=model):
        seen = reference.pixel_to_world(x * u.pix, y * u.pix).transform_to(source.coordinate_frame)
    expected = source.wcs.world_to_pixel(seen)
    ours = rotation.derotation_coordinates(
        x, y, _view(reference.wcs, reference.observer_coordinate, rsun),
        _view(source.wcs, source.observer_coordinate, rsun), (time - REFERENCE).to_value(u.s),
        _frame_angles(REFERENCE, time.reshape(1))[0], _rotation_rates(model))
    # sunpy projects points behind the limb too: ours are NaN exactly where the observer cannot see them
    hcc = seen.transform_to(Heliocentric(observer=source.observer_coordinate, obstime=time))
    visible = (hcc.z >= rsun**2 / source.observer_coordinate.radius) & np.isfinite(expected[0])
    np.testing.assert_array_equal(np.isfinite(ours[0]), visible)
    assert np.abs(np.array(ours)[:, visible] - np.array(expected)[:, visible]).max() < 1e-6  # pixels


@pytest.mark.parametrize(("scale", "hours"), [(4.8, 6), (4.8, -3), (0.6, 1)])
def test_control_point_interpolation_matches_the_exact_mapping(scale, hours):
    """The interpolated mapping of grid_coordinates is within 1e-3 pixel of the mapping pixel by pixel."""
    shape = (512, 512) if scale > 1 else (300, 400)
    centre = (0, 0) if scale > 1 else (-500, 300)
    time = REFERENCE + hours * u.h
    reference = sunpy.map.Map(np.zeros(shape), aia_header(REFERENCE, shape, centre, scale))
    source = sunpy.map.Map(np.zeros(shape), aia_header(time, shape, centre, scale))
    rsun = reference.coordinate_frame.rsun
    args = (_view(reference.wcs, reference.observer_coordinate, rsun),
            _view(source.wcs, source.observer_coordinate, rsun), hours * 3600.0,
            _frame_angles(REFERENCE, time.reshape(1))[0], _rotation_rates("howard"))
    interpolated = rotation.grid_coordinates((0, shape[0]), shape[1], *args)
    exact = rotation.derotation_coordinates(np.arange(shape[1], dtype=float), np.arange(shape[0], dtype=float)[:, None],
                                            *args)
    for ours, theirs in zip(interpolated, exact, strict=True):
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
        assert np.nanmax(np.abs(ours - theirs)) < 1e-3


# ---- accuracy on the rotating Sun, and sunpy's reprojection -----------------------------------

def test_features_stay_on_their_reference_pixel(features):
    points, maps, corner = features
    cube = TimelagCube.from_maps(maps)
    derotated = cube.derotate(corner, width=90 * u.arcsec, height=80 * u.arcsec)
    x, y = region_pixels(derotated, points)
    data = derotated.data.compute()
    drift = np.array([np.hypot(*(centroids(frame, x, y) - np.stack([x, y], axis=1)).T) for frame in data])
    assert np.isfinite(drift).all()
    assert np.median(drift) <= 0.05 and np.percentile(drift, 99) <= 0.25  # pixels; measured 0.002 and 0.003
    # the features did move: on the sky's pixels of the first and last frames, they are elsewhere
    raw = cube.submap(corner, width=90 * u.arcsec, height=80 * u.arcsec).data.compute()
    pixels = np.rint(y).astype(int), np.rint(x).astype(int)
    assert (data[:, pixels[0], pixels[1]] > 0.9 * PEAK).all()
    assert (raw[[0, -1]][:, pixels[0], pixels[1]] < 0.01 * PEAK).all()


@pytest.mark.parametrize(("order", "algorithm"), [(1, "bilinear"), (3, "bicubic")])
def test_agrees_with_sunpy_reproject(features, order, algorithm):
    points, maps, corner = features
    maps = maps[::3]  # 3 hours apart
    derotated = TimelagCube.from_maps(maps).derotate(corner, width=90 * u.arcsec, height=80 * u.arcsec,
                                                     order=order)
    ours = derotated.data.compute()
    with propagate_with_solar_surface():
        theirs = np.array([m.reproject_to(derotated.celestial_wcs, algorithm="interpolation", order=algorithm).data
                           for m in maps])
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    # the mappings agree to 1e-4 pixel (grid_coordinates' tolerance; sunpy's transforms to 1e-7), and the
    # features' steepest slope is PEAK exp(-1/2) / SIGMA = 0.3 PEAK per pixel: 3e-5 PEAK, plus rounding
    assert np.nanmax(np.abs(ours - theirs)) < 1e-4 * PEAK


def test_full_field_default_is_nan_off_disk_and_out_of_sight(full_disk):
    cube = TimelagCube.from_maps(full_disk)
    derotated = cube.derotate()
    assert derotated.data.shape == cube.data.shape
    data = derotated.data.compute()
    grid = derotated._frame_map(3)
    coordinates = sunpy.map.all_coordinates_from_map(grid)
    on_disk = sunpy.map.coordinate_is_on_solar_disk(coordinates)
    np.testing.assert_array_equal(np.isfinite(data[3]), on_disk)
    # the reference frame is itself: its grid is the cube's and the spline interpolates its pixels
    np.testing.assert_allclose(data[3][on_disk], full_disk[3].data[on_disk], rtol=1e-6)
    for i in (0, 6):  # 12 hours before and after: NaN also where the surface is out of sight then
        frame = full_disk[i]
        with propagate_with_solar_surface():
            seen = coordinates[on_disk].transform_to(Heliocentric(observer=frame.observer_coordinate,
                                                                  obstime=frame.reference_date))
        visible = np.zeros(on_disk.shape, bool)
        visible[on_disk] = seen.z >= frame.coordinate_frame.rsun**2 / frame.observer_coordinate.radius
        assert (visible & ~on_disk).sum() == 0 and (on_disk & ~visible).sum() > 10
        # pixels on the edge of visibility may round either way
        assert (np.isfinite(data[i]) != visible).sum() <= 2


# ---- laziness and windows ---------------------------------------------------------------------

def test_is_lazy_and_reads_only_a_window_of_each_frame(region, monkeypatch):
    points, maps, corner = region
    frames = np.stack([m.data for m in maps])
    tiles = []

    def read(block, block_info=None):
        tiles.append(tuple(block_info[0]["chunk-location"]))
        return block

    data = da.from_array(frames, chunks=(1, 20, 20)).map_blocks(read, meta=frames[:0, :0, :0])
    cube = TimelagCube.from_maps(maps)
    cube = cube._new_instance(data=data)
    windows = []
    original = rotation.derotate_frame
    monkeypatch.setattr(rotation, "derotate_frame", lambda window, *a, **k: windows.append(window.shape) or
                        original(window, *a, **k))
    derotated = cube.derotate(corner, width=30 * u.arcsec, height=30 * u.arcsec)
    assert tiles == [] and windows == []  # nothing read or computed yet
    result = derotated.data.compute()
    assert len(windows) == len(maps)
    # each frame's window: the region (50 x 50 pixels) and the spline's margins, not the 180 x 260 frame
    assert all(h < 100 and w < 100 for h, w in windows)
    per_frame = np.bincount([t[0] for t in tiles], minlength=len(maps))
    assert per_frame.max() <= 36 < 9 * 13  # tiles of 20 x 20 pixels read, of 117 per frame
    expected = TimelagCube.from_maps(maps).derotate(corner, width=30 * u.arcsec, height=30 * u.arcsec)
    np.testing.assert_array_equal(result, expected.data.compute())


def test_one_task_per_frame_and_a_small_graph(region):
    points, maps, corner = region
    derotated = TimelagCube.from_maps(maps).derotate(corner, width=90 * u.arcsec, height=80 * u.arcsec)
    assert derotated.data.chunks[0] == (1,) * len(maps)
    graph = dict(derotated.data.__dask_graph__())
    keys = list(flatten(derotated.data.__dask_keys__()))
    assert len(keys) == len(maps)
    # per frame: its data, the slice of its window, its few numbers, the derotation (and two reshapes)
    assert len(graph) <= 6 * len(maps)
    # a derotation task holds numbers, not arrays: the mapping is computed in the task
    assert max(len(pickle.dumps(graph[key])) for key in keys) < 10_000


# ---- regions, reference times, metadata -------------------------------------------------------

def test_region_forms_read_as_submap_reads_them(region):
    points, maps, corner = region
    cube = TimelagCube.from_maps(maps)
    full = cube.derotate()
    top_right = SkyCoord(corner.Tx + 90 * u.arcsec, corner.Ty + 80 * u.arcsec, frame=corner.frame)
    expected = maps[3].submap(corner, top_right=top_right)  # the reference time is the middle frame's
    pixels = [u.Quantity(maps[3].wcs.world_to_pixel(c), u.pix) for c in (corner, top_right)]
    for region in ({"bottom_left": corner, "top_right": top_right},
                   {"bottom_left": corner, "width": 90 * u.arcsec, "height": 80 * u.arcsec},
                   {"bottom_left": pixels[0], "top_right": pixels[1]}):
        derotated = cube.derotate(**region)
        assert derotated.data.shape[1:] == expected.data.shape
        ours = derotated.wcs.pixel_to_world(0, 0, 0)[0]
        assert ours.separation(expected.pixel_to_world(0 * u.pix, 0 * u.pix)) < 1e-6 * u.arcsec
        # the same values as the same pixels of the whole field
        x0, y0 = np.rint(full.celestial_wcs.world_to_pixel(ours)).astype(int)
        ny, nx = expected.data.shape
        np.testing.assert_allclose(derotated.data.compute(), full.data[:, y0 : y0 + ny, x0 : x0 + nx].compute(),
                                   atol=1e-4 * PEAK)


def test_submap_of_a_derotated_cube_reads_the_region_at_the_reference_time(region):
    points, maps, corner = region
    cube = TimelagCube.from_maps(maps)
    top_right = SkyCoord(corner.Tx + 90 * u.arcsec, corner.Ty + 80 * u.arcsec, frame=corner.frame)
    corner, top_right = (SkyCoord(c.Tx, c.Ty, frame=maps[-1].coordinate_frame) for c in (corner, top_right))
    later = cube.derotate(reference_time=cube.time[-1])  # 6 h after the first frame, whose observer differs
    cropped = later.submap(corner, top_right=top_right)
    expected = maps[-1].submap(corner, top_right=top_right)  # the grid is that of the last frame's time
    assert cropped.data.shape[1:] == expected.data.shape
    ours = cropped.wcs.pixel_to_world(0, 0, 0)[0]
    assert ours.separation(expected.pixel_to_world(0 * u.pix, 0 * u.pix)) < 1e-6 * u.arcsec


def test_reference_time_default_and_explicit(region):
    points, maps, corner = region
    cube = TimelagCube.from_maps(maps)
    default = cube.derotate()
    assert default.wcs.pixel_to_world(0, 0, 0)[0].obstime == cube.time[3]
    finite = np.isfinite(default.data[3].compute())
    np.testing.assert_allclose(default.data[3].compute()[finite], maps[3].data[finite], atol=1e-4 * PEAK)

    first = cube.derotate(reference_time=cube.time[1])
    frame = first.wcs.pixel_to_world(0, 0, 0)[0]
    assert frame.obstime == cube.time[1]
    assert frame.observer.separation_3d(maps[1].observer_coordinate) < 1 * u.m
    np.testing.assert_allclose(first.data[1].compute(), maps[1].data, atol=1e-4 * PEAK)

    between = (cube.time[4] + (cube.time[5] - cube.time[4]) / 4).isot
    middle = cube.derotate(corner, width=90 * u.arcsec, height=80 * u.arcsec, reference_time=between)
    observer = middle.observer
    assert middle.wcs.pixel_to_world(0, 0, 0)[0].obstime == Time(between)
    expected = maps[4].observer_coordinate.radius * 0.75 + maps[5].observer_coordinate.radius * 0.25
    assert abs(observer.radius - expected) < 1 * u.m
    with transform_with_sun_center():  # the features, rotated to `between`, sit on their pixels there
        rotated = SkyCoord(RotatedSunFrame(lon=points.lon, lat=points.lat, base=points.frame, rotated_time=between))
        x, y = middle.celestial_wcs.world_to_pixel(rotated.transform_to(middle.wcs.pixel_to_world(0, 0, 0)[0].frame))
    data = middle.data.compute()
    drift = np.array([np.hypot(*(centroids(frame, x, y) - np.stack([x, y], axis=1)).T) for frame in data])
    assert np.nanmedian(drift) < 0.05


def test_metadata_per_frame_and_ready_for_the_analysis(region):
    points, maps, corner = region
    cube = TimelagCube.from_maps(maps)
    derotated = cube.derotate(corner, width=90 * u.arcsec, height=80 * u.arcsec, rotation_model="snodgrass")
    assert isinstance(derotated, TimelagCube)
    assert (derotated.time == cube.time).all()
    assert (derotated.exposure_time == cube.exposure_time).all()
    assert derotated.wavelength == cube.wavelength and derotated.unit == cube.unit
    assert derotated.data.dtype == np.float32
    reference = derotated.observer
    for header, original in zip(derotated.headers, cube.headers, strict=True):
        assert header["T_OBS"] == original["T_OBS"] and header["EXPTIME"] == original["EXPTIME"]
        assert header["DEROTREF"] == cube.time[3].isot and header["DEROTMOD"] == "snodgrass"
        assert header["HGLN_OBS"] == pytest.approx(reference.lon.to_value(u.deg), abs=1e-12)
    to_maps = derotated.to_maps()
    assert [m.date for m in to_maps] == [m.date for m in maps]
    rate = derotated.normalize_exposure().rebin((1, 2, 2))
    ny, nx = derotated.data.shape[1:]
    assert rate.unit == u.ct / u.s and rate.data.shape == (7, ny // 2, nx // 2)
    assert np.isfinite(rate.data.compute()).all()


def test_works_after_register(aia_frames):
    """Level-1 frames (sunpy's AIA test image, 12 s apart), registered then derotated: the whole field."""
    registered = TimelagCube.from_files(aia_frames).register()
    derotated = registered.derotate()
    assert derotated.data.shape == registered.data.shape
    data, frames = derotated.data.compute(), registered.data.compute()
    grid = derotated._frame_map(3)
    on_disk = sunpy.map.coordinate_is_on_solar_disk(sunpy.map.all_coordinates_from_map(grid))
    assert (np.isnan(data[3]) == ~on_disk).all()
    np.testing.assert_allclose(data[3][on_disk], frames[3][on_disk], rtol=1e-5)
    # 12 s of rotation move the disk centre by 0.02 of these 19 arcsec pixels
    centre = (slice(50, 78),) * 2
    assert np.abs(data[0][centre] - frames[0][centre]).max() < 0.05 * np.abs(frames[0][centre]).max()


# ---- values without a source, errors ----------------------------------------------------------

def test_missing_and_nan_pixels(region):
    points, maps, corner = region
    frames = [sunpy.map.Map(m.data.copy(), m.meta) for m in maps]
    frames[0].data[60:62, 100:103] = np.nan
    cube = TimelagCube.from_maps(frames)
    # a region reaching past the frames' edge: the early frames do not cover its east side
    east = SkyCoord(corner.Tx - 55 * u.arcsec, corner.Ty, frame=corner.frame)
    wide = cube.derotate(east, width=150 * u.arcsec, height=80 * u.arcsec, missing=-1.0)
    data = wide.data.compute()
    with propagate_with_solar_surface():
        theirs = maps[0].reproject_to(wide.celestial_wcs).data
    outside = np.isnan(theirs)
    assert outside.any() and (data[0][outside] == -1).all()
    assert np.isnan(data[0]).sum() > 0  # the NaN pixels of frame 0, spread by the spline's footprint
    assert not np.isnan(data[1:]).any() and (data[0] != -1).sum() == (~outside).sum()


def test_errors(region, full_disk):
    points, maps, corner = region
    cube = TimelagCube.from_maps(maps)
    far = SkyCoord(-900 * u.arcsec, 900 * u.arcsec, frame=corner.frame)
    with pytest.raises(ValueError, match="outside the field of view"):
        cube.derotate(far, width=10 * u.arcsec, height=10 * u.arcsec)
    with pytest.raises(ValueError, match="reference_time .* outside the cube's time range"):
        cube.derotate(reference_time=cube.time[-1] + 1 * u.min)
    with pytest.raises(ValueError, match="order must be an integer from 0 to 5"):
        cube.derotate(order=6)
    with pytest.raises(ValueError, match="rotation_model='spinning' is not one of sunpy's"):
        cube.derotate(rotation_model="spinning")
    carree = [sunpy.map.Map(m.data, {**m.meta, "ctype1": "HPLN-CAR", "ctype2": "HPLT-CAR"}) for m in full_disk]
    with pytest.raises(ValueError, match="gnomonic"):
        TimelagCube.from_maps(carree).derotate()


def test_kernels_import_without_sunpy():
    code = ("import sys; sys.modules.update(sunpy=None, ndcube=None, gwcs=None)\n"
            "import sunpy_timelag.rotation\nprint('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@pytest.mark.gpu
def test_cupy_matches_numpy(region):
    cupy = pytest.importorskip("cupy")
    if not backend.cupy_available():
        pytest.skip("no GPU")
    points, maps, corner = region
    frames = [sunpy.map.Map(m.data.copy(), m.meta) for m in maps]
    frames[2].data[60:62, 100:103] = np.nan
    cube = TimelagCube.from_maps(frames)
    for order in (1, 3):
        on_gpu = cube.as_cupy().derotate(corner, width=150 * u.arcsec, height=80 * u.arcsec, order=order)
        assert backend.is_cupy_array(on_gpu.data)
        result = on_gpu.data.compute()
        assert isinstance(result, cupy.ndarray)
        expected = cube.derotate(corner, width=150 * u.arcsec, height=80 * u.arcsec, order=order).data.compute()
        np.testing.assert_array_equal(cupy.asnumpy(cupy.isnan(result)), np.isnan(expected))
        assert np.nanmax(np.abs(cupy.asnumpy(result) - expected)) < 1e-5 * PEAK


def test_observer_as_sunpy_reads_it_for_aia():
    # AIA maps take their observer from HAEX/HAEY/HAEZ_OBS before HGLN_OBS: frames whose headers keep both
    # fixed while T_OBS moves see an observer that moves in Stonyhurst longitude; follow sunpy's reading
    small = sunpy.map.Map(sunpy.data.test.get_test_filepath("aia_171_level1.fits"))
    start = Time(small.meta["t_obs"])
    maps = []
    for k, hours in enumerate((0, 3, 6)):
        meta = dict(small.meta)
        meta.update(crota2=0.0, t_obs=(start + hours * u.h).isot, exptime=2.0)
        maps.append(sunpy.map.Map(small.data.astype(np.float32) + k, meta))
    assert maps[0].observer_coordinate.lon != maps[2].observer_coordinate.lon
    cube = TimelagCube.from_maps(maps)
    corner = SkyCoord(-400 * u.arcsec, 0 * u.arcsec, frame=maps[1].coordinate_frame)
    derotated = cube.derotate(corner, width=300 * u.arcsec, height=300 * u.arcsec, order=1)
    with propagate_with_solar_surface():
        expected = np.stack([m.reproject_to(derotated.celestial_wcs, algorithm="interpolation",
                                            order="bilinear").data for m in maps])
    np.testing.assert_allclose(derotated.data.compute(), expected, rtol=1e-4, atol=1e-3 * np.nanmax(expected))

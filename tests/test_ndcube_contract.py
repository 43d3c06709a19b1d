"""
ndcube's behaviours on a `TimelagCube`: each gives the right result, with the per-frame properties
following, or a clear error. The expectations come from sunpy Maps of the same files and from ndcube's
own WCS wrappers.
"""
import pickle

import astropy.units as u
import matplotlib
import numpy as np
import pytest
import sunpy.map
from ndcube import NDCube, NDCubeSequence

from sunpy_timelag import TimelagCube, backend

matplotlib.use("Agg")


@pytest.fixture
def cube(aia_frames):
    return TimelagCube.from_files(aia_frames)


@pytest.fixture
def first_map(aia_frames):
    return sunpy.map.Map(aia_frames[0])


def sky_of(wcs, x, y):
    return wcs.pixel_to_world(np.asarray(x, float), np.asarray(y, float))


def assert_same_sky(first, second, atol=1e-6 * u.arcsec):
    assert u.allclose(first.Tx, second.Tx, atol=atol) and u.allclose(first.Ty, second.Ty, atol=atol)


def test_one_frame(cube, first_map):
    frame = cube[3]
    assert isinstance(frame, TimelagCube) and frame.data.shape == (128, 128)
    assert frame.time.isscalar and frame.time == cube.time[3]
    assert frame.exposure_time.isscalar and frame.exposure_time == cube.exposure_time[3]
    assert frame.headers == (cube.headers[3],)
    assert_same_sky(sky_of(frame.celestial_wcs, [0, 50], [7, 127]),
                    first_map.pixel_to_world([0, 50] * u.pix, [7, 127] * u.pix))
    squeezed = cube[2:3].squeeze()
    assert squeezed.time == cube.time[2] and squeezed.data.shape == (128, 128)
    np.testing.assert_array_equal(frame.data.compute(), sunpy.map.Map(cube.to_maps()[3]).data)


@pytest.mark.parametrize(("item", "x0", "y0"), [
    ((slice(None), slice(10, 40), slice(20, 100)), 20, 10),
    ((slice(1, 5), slice(78, None), slice(3, 124)), 3, 78),
    ((0, slice(5, 60)), 0, 5),
])
def test_spatial_slices_keep_the_celestial_wcs(cube, first_map, item, x0, y0):
    sliced = cube[item]
    x, y = np.array([0, 3, 9]), np.array([0, 5, 2])
    assert_same_sky(sky_of(sliced.celestial_wcs, x, y), first_map.pixel_to_world((x0 + x) * u.pix, (y0 + y) * u.pix))


def test_strided_slices_are_refused(cube):
    with pytest.raises(IndexError, match="Slicing WCS with a step is not supported"):  # ndcube/astropy: use rebin
        cube[:, ::2]


def test_one_row_or_column(cube, first_map):
    row = cube[:, 5]  # (time, x)
    assert (row.time == cube.time).all() and row.celestial_wcs.pixel_shape == (128, 1)
    assert_same_sky(sky_of(row.celestial_wcs, [0, 77], [0, 0]),
                    first_map.pixel_to_world([0, 77] * u.pix, [5, 5] * u.pix))
    pixel = cube[:, 5, 9]  # (time,): one light curve
    assert (pixel.time == cube.time).all()
    np.testing.assert_array_equal(pixel.data.compute(), cube.data[:, 5, 9].compute())


def test_one_value_is_refused(cube):
    with pytest.raises(IndexError, match="keeps at least one array axis"):
        cube[0, 5, 5]
    assert cube.time.size == 6  # the cube is intact after the refusal


def test_rebin_matches_ndcube_and_propagates_uncertainties(cube):
    rebinned = cube.rebin((2, 2, 2), propagate_uncertainties=True)
    # ndcube's own resampled WCS (the cube's gWCS) gives the bin centres: the celestial WCS agrees
    x, y = np.array([0, 10, 63]), np.array([0, 40, 63])
    assert_same_sky(sky_of(rebinned.celestial_wcs, x, y), rebinned.wcs.pixel_to_world(x, y, np.zeros(3))[0])
    assert u.allclose(rebinned.exposure_time, cube.exposure_time.reshape(3, 2).mean(axis=1))
    unequal = cube.rebin((1, 4, 2))  # unequal factors on a rolled image: CDELT and PC rewritten exactly
    x, y = np.array([0, 5, 60]), np.array([0, 30, 31])
    assert_same_sky(sky_of(unequal.celestial_wcs, x, y), unequal.wcs.pixel_to_world(x, y, np.zeros(3))[0])


def test_crop_by_world_coordinates(cube, first_map):
    corners = first_map.pixel_to_world([30, 80] * u.pix, [20, 70] * u.pix)
    cropped = cube.crop([corners[0], None], [corners[1], None])
    assert_same_sky(sky_of(cropped.celestial_wcs, 0, 0), corners[0])
    by_values = cube.crop_by_values([corners[0].Tx, corners[0].Ty, None], [corners[1].Tx, corners[1].Ty, None],
                                    units=["arcsec", "arcsec", None])
    assert by_values.data.shape == cropped.data.shape
    assert u.allclose(by_values.exposure_time, cube.exposure_time)


def test_arithmetic_keeps_the_frames(cube):
    doubled = 2 * cube
    np.testing.assert_array_equal(doubled.data.compute(), 2 * cube.data.compute())
    assert u.allclose(doubled.exposure_time, cube.exposure_time) and doubled.channel == 171
    shifted = cube + 5 * cube.unit
    np.testing.assert_array_equal(shifted.data.compute(), cube.data.compute() + 5)
    assert shifted.unit == cube.unit and (shifted.time == cube.time).all()
    per_second = cube / (3 * u.s)
    assert per_second.unit == cube.unit / u.s


def test_reproject_to_its_own_wcs_is_the_identity(cube):
    part = cube[:3]
    reprojected = part.reproject_to(part.wcs)
    assert type(reprojected) is NDCube
    np.testing.assert_allclose(reprojected.data, part.data.compute(), rtol=1e-6, atol=1e-6)
    again = TimelagCube.from_ndcube(reprojected)  # the frames' channel and exposures travel with it
    assert again.channel == 171 and u.allclose(again.exposure_time, part.exposure_time)


def test_to_nddata_pickle_and_sequence(cube):
    nddata = cube.to_nddata()
    np.testing.assert_array_equal(np.asarray(nddata.data), cube.data.compute())
    restored = pickle.loads(pickle.dumps(cube[1:4, 3:9]))
    assert (restored.time == cube.time[1:4]).all() and restored.headers == cube.headers[1:4]
    sequence = NDCubeSequence([cube[:3], cube[3:]])
    assert sequence[1].time[0] == cube.time[3]


def test_plot_one_frame_shows_its_data(cube):
    import matplotlib.pyplot as plt

    axes = cube[1].plot()
    np.testing.assert_array_equal(np.asarray(axes.get_images()[0].get_array()), cube.data[1].compute())
    plt.close("all")


def test_as_numpy_round_trip(cube):
    assert not backend.is_cupy_array(cube.as_numpy().data)
    np.testing.assert_array_equal(cube.as_numpy().data.compute(), cube.data.compute())
    assert (cube.as_numpy().time == cube.time).all()


def test_as_cupy_without_cupy(cube):
    try:
        import cupy  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("CuPy is installed")
    with pytest.raises(ImportError, match=r"as_cupy\(\) needs CuPy"):
        cube.as_cupy()


@pytest.mark.gpu
def test_as_cupy_stays_on_the_gpu(cube):
    cupy = pytest.importorskip("cupy")
    if not backend.cupy_available():
        pytest.skip("no GPU")
    on_gpu = cube.as_cupy().normalize_exposure().rebin((1, 2, 2))
    assert backend.is_cupy_array(on_gpu.data) and isinstance(on_gpu.data.compute(), cupy.ndarray)
    expected = cube.normalize_exposure().rebin((1, 2, 2)).data.compute()
    np.testing.assert_allclose(on_gpu.as_numpy().data.compute(), expected, rtol=1e-6)


def test_prints_like_a_sunpy_object(cube, first_map):
    text = str(cube.normalize_exposure())
    assert "Channel:       171 Angstrom" in text
    assert f"{cube.time[0].isot} to {cube.time[-1].isot} (6 frames)" in text
    assert "Cadence:       12.00 s" in text  # the frames are written 12 s apart
    scale = first_map.scale[0].to_value(u.arcsec / u.pix)
    assert f"128 x 128 (x, y) of {scale:.3g} x {scale:.3g} arcsec" in text and "Unit:          DN / s" in text
    assert "(1 frame)" in str(cube[2]) and "Array axes:    y, x" in str(cube[2])
    assert repr(cube).endswith(str(cube))

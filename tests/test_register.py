"""
Tests of `sunpy_timelag.aia.register` against `aiapy.calibrate.register`, of its spline kernel against
`scipy.ndimage.affine_transform`, and of the ``"sunpy_timelag"`` rotation method of sunpy.
"""
import importlib

import aiapy.calibrate
import astropy.units as u
import dask.array as da
import numpy as np
import pytest
import scipy.ndimage
import sunpy.data.test
import sunpy.map

from sunpy_timelag import backend
from sunpy_timelag.aia import register
from sunpy_timelag.aia.register import ROTATION_METHOD, Registration, affine_spline

from .conftest import AIApyUserWarning

# The module (the package attribute of the same name is the function).
register_module = importlib.import_module("sunpy_timelag.aia.register")


@pytest.fixture(scope="module")
def aia_map():
    """sunpy's 128 x 128 AIA 171 level-1 test image: a full-disk frame binned to 19.2 arcsec per pixel."""
    return sunpy.map.Map(sunpy.data.test.get_test_filepath("aia_171_level1.fits"))


def rolled(aia_map, data=None, **updates):
    """The test map rolled by 12 degrees with the Sun off-centre: padding, rotation and a shifted crop."""
    meta = {**aia_map.meta, "crota2": 12.0, "crpix1": 66.3, "crpix2": 61.1, **updates}
    return sunpy.map.Map(aia_map.data if data is None else data, meta)


def relative_deviation(ours, reference):
    return np.nanmax(np.abs(ours - reference)) / np.nanmax(np.abs(reference))


def assert_same_meta(ours, reference):
    assert set(ours) == set(reference)
    for key, value in reference.items():
        if isinstance(value, float):
            np.testing.assert_allclose(ours[key], value, rtol=1e-14, atol=0, err_msg=key)
        else:
            assert ours[key] == value, key


@pytest.fixture(params=["numba", "scipy"])
def kernel(request, monkeypatch):
    """Run a test with each CPU kernel: numba (if installed) and the scipy.ndimage fallback."""
    if request.param == "numba":
        pytest.importorskip("numba")
    else:
        monkeypatch.setattr(register_module, "numba", None)
    return request.param


@pytest.mark.parametrize("order", [1, 3])
@pytest.mark.parametrize("roll", [False, True])
def test_matches_aiapy(aia_map, kernel, roll, order):
    smap = rolled(aia_map) if roll else aia_map
    reference = aiapy.calibrate.register(smap, order=order)
    ours = register(smap, order=order)
    assert type(ours) is type(reference)
    assert ours.data.shape == reference.data.shape and ours.data.dtype == reference.data.dtype
    assert relative_deviation(ours.data, reference.data) < 1e-12  # required: 1e-6
    assert_same_meta(ours.meta, reference.meta)
    assert ours.meta["lvl_num"] == 1.5 and ours.meta["cdelt1"] == pytest.approx(19.2)
    assert ours.reference_pixel == reference.reference_pixel


@pytest.mark.parametrize("missing", [None, np.nan, -100.0, 1e6])
def test_nan_pixels_and_missing_as_aiapy(aia_map, missing):
    data = aia_map.data.copy()
    data[60:62, 30:33] = np.nan
    smap = rolled(aia_map, data)
    reference = aiapy.calibrate.register(smap, missing=missing).data
    ours = register(smap, missing=missing).data
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(reference))
    assert np.isnan(ours).any()
    assert relative_deviation(ours, reference) < 1e-12


def test_integer_data_as_aiapy(aia_map):
    smap = rolled(aia_map, aia_map.data.astype(np.int16))
    ours = register(smap)
    assert ours.data.dtype == np.int16
    np.testing.assert_array_equal(ours.data, aiapy.calibrate.register(smap).data)
    with pytest.raises(ValueError, match="integer data"):
        register(smap, missing=np.nan)


def test_rotation_method_registered_with_sunpy(aia_map):
    smap = rolled(aia_map)
    ours = smap.rotate(order=3, missing=0.0, method=ROTATION_METHOD)
    reference = smap.rotate(order=3, missing=0.0, method="scipy")
    assert relative_deviation(ours.data, reference.data) < 1e-12
    via_aiapy = aiapy.calibrate.register(smap, method=ROTATION_METHOD)
    np.testing.assert_allclose(via_aiapy.data, register(smap).data, rtol=1e-12, atol=0)
    # a named method is aiapy's register with that rotation method
    np.testing.assert_array_equal(register(smap, method="scipy").data, aiapy.calibrate.register(smap).data)


@pytest.mark.parametrize("order", range(6))
def test_affine_spline_matches_scipy(kernel, order):
    rng = np.random.default_rng(order)
    image = rng.normal(size=(37, 53)) * 100
    matrix = np.array([[0.9137, 0.3021], [-0.2473, 1.1069]])  # no sample exactly half-way: order 0 is unambiguous
    shift, origin, shape = np.array([-3.217, 4.713]), np.array([2.0, -5.0]), (40, 49)
    # sunpy's convention: scipy on the transposed image, coordinates (x, y)
    expected = scipy.ndimage.affine_transform(image.T, matrix, offset=shift + matrix @ origin,
                                              output_shape=shape[::-1], order=order, mode="constant", cval=-7.0).T
    ours = affine_spline(image, matrix, shift, origin=origin, shape=shape, order=order, cval=-7.0)
    assert ours.shape == shape and ours.dtype == image.dtype
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-11 * np.abs(image).max())
    assert (ours == -7.0).any()  # some pixels fall outside


def test_threads_and_byte_order_do_not_change_the_numbers():
    pytest.importorskip("numba")
    image = np.random.default_rng(1).normal(size=(300, 260)).astype(">f4")
    matrix, shift = np.array([[0.99, 0.02], [-0.02, 0.99]]), np.array([1.5, -2.25])
    one = affine_spline(image, matrix, shift, workers=1)
    assert one.dtype == np.float32 and one.dtype.isnative
    np.testing.assert_array_equal(affine_spline(image, matrix, shift, workers=3), one)


def test_dask_map_is_computed(aia_map):
    smap = sunpy.map.Map(da.from_array(aia_map.data, chunks=64), aia_map.meta)
    np.testing.assert_array_equal(register(smap).data, register(aia_map).data)


def test_registration_from_header_alone(aia_map):
    smap = rolled(aia_map)
    lazy = sunpy.map.Map(da.zeros(smap.data.shape, chunks=smap.data.shape), smap.meta)
    registration = Registration.from_map(lazy)
    assert registration.shape == (128, 128) and any(registration.pad)
    np.testing.assert_array_equal(registration(smap.data), register(smap).data)
    with pytest.raises(ValueError, match="shape"):
        registration(smap.data[:64])


def test_bad_input(aia_map):
    with pytest.raises(TypeError, match="AIA"):
        register(sunpy.map.GenericMap(aia_map.data, aia_map.meta))
    cutout = aia_map.submap([0, 0] * u.pix, top_right=[63, 63] * u.pix)
    with pytest.raises(ValueError, match="full-disk"):
        register(cutout)
    with pytest.raises(ValueError, match="full disk"):  # aiapy refuses it too
        aiapy.calibrate.register(cutout)
    no_roll = {key: value for key, value in aia_map.meta.items() if key != "crota2"}
    with pytest.raises(ValueError, match="roll"):
        register(sunpy.map.Map(aia_map.data, no_roll))
    no_scale = {key: value for key, value in aia_map.meta.items() if key not in ("cdelt1", "cdelt2")}
    with pytest.raises(ValueError, match="pixel scale"):
        register(sunpy.map.Map(aia_map.data, no_scale))
    with pytest.warns(AIApyUserWarning, match="level 1"):
        register(register(aia_map))
    with pytest.raises(ValueError, match="order"):
        register(aia_map, order=6)


@pytest.mark.gpu
def test_cupy_matches_numpy(aia_map):
    cupy = pytest.importorskip("cupy")
    if not backend.cupy_available():
        pytest.skip("no GPU")
    data = aia_map.data.copy()
    data[60:62, 30:33] = np.nan
    smap = rolled(aia_map, data)
    registration = Registration.from_map(smap)
    for image in (smap.data, smap.data.astype(np.float32)):
        on_gpu = registration(cupy.asarray(image))
        assert isinstance(on_gpu, cupy.ndarray) and on_gpu.dtype == image.dtype
        on_cpu = registration(image)
        np.testing.assert_array_equal(cupy.asnumpy(cupy.isnan(on_gpu)), np.isnan(on_cpu))
        assert relative_deviation(cupy.asnumpy(on_gpu), on_cpu) < 1e-6

"""
Tests of `sunpy_timelag.aia.deconvolve` and `Deconvolver` against `aiapy.psf.deconvolve`.
"""
import copy
import importlib
import pickle
import warnings

import astropy.units as u
import dask.array as da
import numpy as np
import pytest
import scipy.ndimage
import sunpy.data.test
import sunpy.map

from sunpy_timelag import backend
from sunpy_timelag.aia import Deconvolver, deconvolve, psf
from sunpy_timelag.aia.deconvolve import fit_psf

from .conftest import AIApyUserWarning
from .conftest import aiapy_deconvolve as aiapy_deconvolve_map

# The module (the package attribute of the same name is the function).
deconvolve_module = importlib.import_module("sunpy_timelag.aia.deconvolve")

ORDERS = np.arange(-10, 11)


@pytest.fixture(scope="module")
def aia_map():
    """sunpy's 128 x 128 AIA 171 level-1 test image (float64 data, some negative pixels)."""
    return sunpy.map.Map(sunpy.data.test.get_test_filepath("aia_171_level1.fits"))


@pytest.fixture(scope="module")
def image(aia_map):
    """A 256 x 256 image: the test image interpolated, with Poisson noise."""
    counts = np.clip(scipy.ndimage.zoom(aia_map.data.astype(float), 2, order=1), 0, None)
    return np.random.default_rng(4).poisson(counts).astype(np.float64)


@pytest.fixture(scope="module")
def kernel():
    return psf(171, size=256, diffraction_orders=ORDERS)


def aiapy_deconvolve(data, meta, kernel, **kwargs):
    return aiapy_deconvolve_map(sunpy.map.Map(np.asarray(data, dtype=np.float64), meta), psf=kernel, **kwargs).data


def relative_deviation(ours, reference):
    return np.abs(ours - reference).max() / np.abs(reference).max()


@pytest.fixture(params=["ducc0", "scipy"])
def fft_library(request, monkeypatch):
    """Run a test with each CPU FFT library: ducc0 (if installed) and the scipy.fft fallback."""
    if request.param == "ducc0":
        pytest.importorskip("ducc0")
    else:
        monkeypatch.setattr(deconvolve_module, "ducc0", None)
    return request.param


@pytest.mark.parametrize(("dtype", "tolerance"), [(np.float32, 1e-5), (np.float64, 1e-10)])
def test_array_matches_aiapy(image, kernel, aia_map, fft_library, dtype, tolerance):
    reference = aiapy_deconvolve(image, aia_map.meta, kernel, iterations=25)
    ours = deconvolve(image, psf=kernel, dtype=dtype)
    assert isinstance(ours, np.ndarray) and ours.dtype == dtype and ours.shape == image.shape
    assert relative_deviation(ours, reference) < tolerance


@pytest.mark.parametrize(("dtype", "tolerance"), [(np.float32, 1e-5), (np.float64, 1e-10)])
def test_map_matches_aiapy_with_cropped_psf(aia_map, dtype, tolerance):
    larger = psf(171, size=512, diffraction_orders=ORDERS)
    reference = aiapy_deconvolve(aia_map.data, aia_map.meta, fit_psf(larger, aia_map.data.shape))
    result = deconvolve(aia_map, psf=larger, dtype=dtype)
    assert isinstance(result, sunpy.map.GenericMap)
    assert result.data.dtype == dtype
    assert dict(result.meta) == dict(aia_map.meta) and result.meta is not aia_map.meta
    assert result.wavelength == aia_map.wavelength
    assert relative_deviation(result.data, reference) < tolerance


def test_map_default_psf_is_the_channel_psf(aia_map):
    full = psf(aia_map.wavelength)
    expected = deconvolve(aia_map.data, psf=full, iterations=3)
    np.testing.assert_array_equal(deconvolve(aia_map, iterations=3).data, expected)
    np.testing.assert_array_equal(deconvolve(aia_map.data, channel=171 * u.angstrom, iterations=3), expected)
    reference = aiapy_deconvolve(aia_map.data, aia_map.meta, fit_psf(full, aia_map.data.shape), iterations=3)
    assert relative_deviation(expected, reference) < 1e-5


def test_fit_psf_centres_and_conserves_the_sum():
    kernel = np.zeros((9, 9))
    kernel[4, 4], kernel[4, 5], kernel[0, 0] = 0.5, 0.25, 0.25
    cropped = fit_psf(kernel, (4, 6))
    assert cropped.shape == (4, 6)
    assert cropped[2, 3] == 2 * cropped[2, 4]  # centre (4, 4) -> (2, 3), neighbour kept
    np.testing.assert_allclose(cropped.sum(), 1)  # the lost corner is renormalised away
    padded = fit_psf(kernel, (12, 11))
    assert padded[6, 5] == 0.5 and padded.sum() == kernel.sum()
    assert fit_psf(kernel, (9, 9)) is kernel


def test_deconvolver_reuse_pickle_and_stacks(image, kernel, fft_library):
    deconvolver = Deconvolver(kernel, iterations=4)
    first = deconvolver(image)
    assert deconvolver.transfer_function(image.shape)[0] is deconvolver.transfer_function((3, *image.shape))[0]
    np.testing.assert_array_equal(deconvolver(image), first)
    copied = pickle.loads(pickle.dumps(deconvolver))
    assert len(pickle.dumps(deconvolver)) < kernel.nbytes + 10_000  # no transforms in the pickle
    np.testing.assert_array_equal(copied(image), first)
    stack = np.stack([image, 2 * image])
    assert relative_deviation(deconvolver(stack), np.stack([first, deconvolver(2 * image)])) < 1e-6
    assert len(pickle.dumps(Deconvolver(channel=171))) < 1_000


def periodic_richardson_lucy(image, kernel, iterations):
    """Richardson-Lucy written with direct periodic convolutions (no FFT), kernel centre at n // 2."""
    estimate = image.copy()
    for _ in range(iterations):
        blurred = scipy.ndimage.convolve(estimate, kernel, mode="wrap")
        ratio = np.divide(image, blurred, out=np.zeros_like(image), where=image != 0)
        estimate = estimate * scipy.ndimage.correlate(ratio, kernel, mode="wrap")
    return estimate


@pytest.mark.parametrize("shape", [(41, 27), (40, 27), (41, 26)])
def test_odd_shapes_and_small_blocks(image, kernel, fft_library, monkeypatch, shape):
    # Odd sides (aiapy fails on odd widths and shifts odd heights by a pixel: it centres the PSF with
    # fftshift), and blocks of a few rows or columns, the last one shorter.
    monkeypatch.setattr(deconvolve_module._BlockedSteps, "ROW_BYTES", 3 * shape[1] * 8 - 1)
    monkeypatch.setattr(deconvolve_module._BlockedSteps, "COLUMN_BYTES", 3 * shape[0] * 16 - 1)
    data = image[100:100 + shape[0], 100:100 + shape[1]]
    small = fit_psf(kernel, shape)
    expected = periodic_richardson_lucy(data, small, 4)
    assert relative_deviation(deconvolve(data, psf=small, iterations=4, dtype=np.float64), expected) < 1e-12
    assert relative_deviation(deconvolve(data, psf=small, iterations=4), expected) < 1e-5


def test_result_does_not_depend_on_threads(image, kernel, fft_library):
    one = Deconvolver(kernel, iterations=4, workers=1)(image)
    np.testing.assert_array_equal(Deconvolver(kernel, iterations=4, workers=3)(image), one)


def test_deconvolver_over_a_dask_cube(image, kernel):
    deconvolver = Deconvolver(kernel, iterations=3)
    frames = np.stack([image, image[::-1], image[:, ::-1]])
    cube = da.from_array(frames, chunks=(1, *image.shape))
    result = cube.map_blocks(deconvolver, meta=np.empty((0, 0, 0), np.float32)).compute(scheduler="threads")
    for frame, expected in zip(result, frames, strict=True):
        np.testing.assert_array_equal(frame, deconvolver(expected))


def test_negative_pixels(aia_map, kernel):
    data = aia_map.data
    assert (data < 0).any()
    small = fit_psf(kernel, data.shape)
    np.testing.assert_array_equal(deconvolve(data, psf=small, iterations=2),
                                  deconvolve(np.clip(data, 0, None), psf=small, iterations=2))


def test_negative_pixels_warn_as_aiapy(aia_map, kernel):
    small = fit_psf(kernel, aia_map.data.shape)
    with pytest.warns(AIApyUserWarning, match="negative intensity") as theirs:
        aiapy_deconvolve(aia_map.data, aia_map.meta, small, iterations=1, clip_negative=False)
    with pytest.warns(AIApyUserWarning, match="negative intensity") as ours:
        deconvolve(aia_map, psf=small, iterations=1, clip_negative=False)
    assert [w.category for w in ours] == [w.category for w in theirs if "negative" in str(w.message)]
    # aiapy users' filter silences it (and nothing else is warned)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", category=AIApyUserWarning)
        deconvolve(aia_map.data, psf=small, iterations=1, clip_negative=False)


@pytest.fixture(scope="module")
def dark_regions(aia_map):
    """
    aiapy's ``test_deconvolve_specify_psf`` input at 1024 x 1024 (aiapy's is 4096 x 4096): the 171 test
    image resampled, the 94 A PSF with the pre-flight core and diffraction orders -1..1, and aiapy's
    result (3 iterations). Dark regions: where the image is 0 the float32 blurred image is exactly 0
    at some pixels.
    """
    resampled = aia_map.resample((1024, 1024) * u.pixel)
    kernel = psf(94, size=1024, use_preflightcore=True, diffraction_orders=[-1, 0, 1])
    return resampled, kernel, aiapy_deconvolve_map(resampled, psf=kernel, iterations=3).data


@pytest.mark.parametrize(("dtype", "tolerance"), [(np.float32, 1e-5), (np.float64, 1e-10)])
def test_dark_regions_as_aiapy(dark_regions, fft_library, dtype, tolerance):
    resampled, kernel, reference = dark_regions
    assert np.isfinite(reference).all()
    ours = deconvolve(resampled, psf=kernel, iterations=3, dtype=dtype).data
    assert np.isfinite(ours).all()  # float32 was all NaN (0/0 spread by the FFT)
    assert relative_deviation(ours, reference) < tolerance


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dark_frame_stays_dark(kernel, dtype):
    # All 0: the blurred estimate is exactly 0 everywhere; the limit of d / (u * P) for d = 0 is 0.
    np.testing.assert_array_equal(deconvolve(np.zeros((256, 256)), psf=kernel, iterations=2, dtype=dtype), 0)


def test_non_finite_pixels(image, kernel):
    holed = image.copy()
    holed[10, 20], holed[100, 5] = np.nan, np.inf
    with pytest.warns(UserWarning, match="2 non-finite pixels"):
        result = deconvolve(holed, psf=kernel, iterations=3)
    assert np.isnan(result[10, 20]) and np.isnan(result[100, 5])
    assert np.isfinite(result).sum() == result.size - 2
    zeroed = np.where(np.isfinite(holed), holed, 0)
    expected = deconvolve(zeroed, psf=kernel, iterations=3)
    expected[10, 20] = expected[100, 5] = np.nan
    np.testing.assert_array_equal(result, expected)


def test_bad_input(image, kernel):
    with pytest.raises(ValueError, match="2-D"):
        deconvolve(np.stack([image, image]), psf=kernel)
    with pytest.raises(ValueError, match="2-D"):
        deconvolve(image[0], psf=kernel)
    with pytest.raises(ValueError, match="PSF must be 2-D"):
        deconvolve(image, psf=kernel[0])
    with pytest.raises(ValueError, match="PSF must be finite"):
        deconvolve(image, psf=np.full_like(kernel, np.nan))
    with pytest.raises(ValueError, match="iterations"):
        deconvolve(image, psf=kernel, iterations=0)
    with pytest.raises(ValueError, match="psf= or channel="):
        deconvolve(image)
    with pytest.raises(ValueError, match="exactly one"):
        deconvolve(image, psf=kernel, channel=171)
    with pytest.raises(ValueError, match="unknown AIA channel"):
        deconvolve(image, channel=1600)
    with pytest.raises(ValueError, match="dtype"):
        deconvolve(image, psf=kernel, dtype=np.int32)


def test_map_input_is_not_modified(aia_map, kernel):
    before = copy.deepcopy(aia_map.data)
    deconvolve(aia_map, psf=kernel, iterations=2)
    np.testing.assert_array_equal(aia_map.data, before)


@pytest.mark.gpu
@pytest.mark.parametrize(("dtype", "tolerance"), [(np.float32, 1e-5), (np.float64, 1e-10)])
def test_cupy_matches_numpy(image, kernel, dtype, tolerance):
    cupy = pytest.importorskip("cupy")
    if not backend.cupy_available():
        pytest.skip("no GPU")
    deconvolver = Deconvolver(kernel, dtype=dtype)
    on_gpu = deconvolver(cupy.asarray(image))
    assert isinstance(on_gpu, cupy.ndarray) and on_gpu.dtype == dtype
    assert isinstance(deconvolver.transfer_function(image.shape, cupy)[0], cupy.ndarray)
    assert relative_deviation(cupy.asnumpy(on_gpu), deconvolver(image)) < tolerance
    assert isinstance(deconvolve(cupy.asarray(image), psf=cupy.asarray(kernel), dtype=dtype), cupy.ndarray)

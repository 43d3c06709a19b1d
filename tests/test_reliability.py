"""
Arguments outside their domain, refused with a message naming them (issue 12): the cube, the AIA
corrections and the analysis.
"""
import astropy.units as u
import numpy as np
import pytest

from sunpy_timelag import TimelagCube, timelag_maps
from sunpy_timelag.aia import deconvolve

from .conftest import write_frames


@pytest.fixture
def cube(aia_frames):
    return TimelagCube.from_files(aia_frames)


@pytest.mark.parametrize("bin_shape", [(0, 2, 2), (1, 0, 1), (1, -2, 2), (1, 1.5, 1)])
def test_rebin_needs_positive_integer_factors(cube, bin_shape):
    with pytest.raises(ValueError, match=r"bin_shape must be positive integers \(n_t, n_y, n_x\), one per axis; got"):
        cube.rebin(bin_shape)


def test_rebin_takes_integral_factors_of_any_type(cube):
    expected = cube.data.compute().reshape(6, 64, 2, 64, 2).mean(axis=(2, 4))  # 2x2 bins, independently
    for bin_shape in [(1, 2, 2), np.array([1.0, 2.0, 2.0]), [1, 2, 2] * u.pix]:
        np.testing.assert_allclose(cube.rebin(bin_shape).data.compute(), expected)


@pytest.mark.parametrize("iterations", [2.5, "25", None])
def test_deconvolution_iterations_must_be_an_integer(iterations):
    kernel = np.zeros((16, 16))
    kernel[7:10, 7:10] = 1 / 9
    with pytest.raises(TypeError, match=f"iterations must be an integer, got {iterations!r}"):
        deconvolve(np.ones((16, 16)), psf=kernel, iterations=iterations)


def test_cube_deconvolve_refuses_fractional_iterations(cube):
    with pytest.raises(TypeError, match="iterations must be an integer, got 2.5"):
        cube.deconvolve(iterations=2.5)


def test_one_frame_per_channel_is_not_a_time_series(tmp_path):
    one = TimelagCube.from_files(write_frames(tmp_path / "171", n_frames=1))
    six = TimelagCube.from_files(write_frames(tmp_path / "193", n_frames=6, WAVELNTH=193))
    message = r"the 171 cube has 1 frame\(s\): a time lag needs at least 2 frames of each channel"
    with pytest.raises(ValueError, match=message):
        six.timelag_map(one)
    with pytest.raises(ValueError, match=message):
        timelag_maps([six, one])
    with pytest.raises(ValueError, match=r"the 193 cube has 1 frame\(s\)"):
        six[0].cross_correlation(one)

"""
Tests of `sunpy_timelag.aia.psf` against aiapy's PSF (``aiapy.psf.calculate_psf``; ``psf`` before 0.11).

aiapy computes its PSF on a fixed 4096 x 4096 grid (seconds to minutes per PSF). To compare quickly,
its own code is run on a smaller grid by handing its module an array module whose ``zeros`` and
``arange`` make the smaller grid (see `_AiapyGrid`).
"""
import importlib
import os
import subprocess
import sys

import astropy.units as u
import numpy as np
import pytest

from sunpy_timelag.aia import psf
from sunpy_timelag.aia.psf import _cached_psf

from .conftest import aiapy_psf as aiapy_full_psf

CHANNELS = [94, 131, 171, 193, 211, 304, 335]


class _AiapyGrid:
    """
    The array module of aiapy's PSF code (NumPy, or ``jax.numpy`` for aiapy >= 0.11 with JAX), on a
    ``size`` x ``size`` grid.

    ``zeros`` returns a ``size`` x ``size`` array whatever shape it is asked for: aiapy < 0.11 takes
    its grid from that array's shape. ``arange(n)`` returns the ``size`` central points of
    ``arange(n)``: aiapy >= 0.11 builds its pixel coordinates as ``arange(4096) + 0.5`` about the
    centre ``0.5 * 4096 + 0.5``, which makes them, relative to the centre, those of a ``size`` grid
    (exactly: half-integers). Every other name is the module's own.
    """

    def __init__(self, module, size):
        self.module = module
        self.size = size

    def zeros(self, shape, dtype=float):
        return self.module.zeros((self.size, self.size), dtype=dtype)

    def arange(self, *args, **kwargs):
        if len(args) != 1 or kwargs:  # e.g. the default orders, arange(-100, 101, 1)
            return self.module.arange(*args, **kwargs)
        return self.module.arange(self.size) + (args[0] - self.size) / 2

    def __getattr__(self, name):
        return getattr(self.module, name)


@pytest.fixture
def aiapy_psf(monkeypatch):
    """``aiapy_psf(channel, size, **kwargs)``: aiapy's PSF, with aiapy's code, on a ``size`` grid."""
    module = importlib.import_module("aiapy.psf.psf")
    array_module = module.np

    def compute(channel, size, **kwargs):
        monkeypatch.setattr(module, "np", _AiapyGrid(array_module, size))
        try:
            result = aiapy_full_psf(channel * u.angstrom, **kwargs)
        finally:
            monkeypatch.setattr(module, "np", array_module)
        assert result.shape == (size, size)
        return result

    return compute


def relative_deviation(ours, reference):
    return np.abs(ours - reference).max() / reference.max()


@pytest.mark.parametrize("channel", CHANNELS)
def test_matches_aiapy_reduced_orders(aiapy_psf, channel):
    orders = np.arange(-8, 9)
    reference = aiapy_psf(channel, 256, diffraction_orders=orders)
    ours = psf(channel * u.angstrom, size=256, diffraction_orders=orders)
    assert ours.shape == (256, 256)
    assert relative_deviation(ours, reference) < 1e-10


@pytest.mark.parametrize(("channel", "size", "preflight"), [(171, 128, False), (335, 127, True)])
def test_matches_aiapy_all_orders(aiapy_psf, channel, size, preflight):
    reference = aiapy_psf(channel, size, use_preflightcore=preflight)
    ours = psf(channel, size=size, use_preflightcore=preflight)
    assert relative_deviation(ours, reference) < 1e-10


def test_full_frame_properties():
    full = psf(171 * u.angstrom)
    assert full.shape == (4096, 4096)
    assert full.dtype == np.float64
    assert np.unravel_index(full.argmax(), full.shape) == (2048, 2048)
    np.testing.assert_allclose(full.sum(), 1, rtol=1e-9)
    assert full.min() >= 0


def test_channel_forms_share_the_cache():
    first = psf(171, size=64)
    assert psf(171 * u.angstrom, size=64) is first
    assert psf(17.1 * u.nm, size=64) is first
    assert psf(171, size=64, diffraction_orders=np.arange(-100, 101)) is first
    assert psf(193, size=64) is not first


def test_cached_array_is_read_only():
    result = psf(211, size=64)
    assert not result.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        result[0, 0] = 1


def test_preflight_core_differs():
    assert not np.array_equal(psf(94, size=64), psf(94, size=64, use_preflightcore=True))


def test_disk_cache(tmp_path, monkeypatch):
    first = psf(304, size=64, cache_dir=tmp_path / "psf")
    files = list((tmp_path / "psf").iterdir())
    assert len(files) == 1 and files[0].suffix == ".npy"
    np.testing.assert_array_equal(np.load(files[0]), first)
    _cached_psf.cache_clear()
    # A second session reads the file (marked so that reading it, not recomputing, is visible).
    np.save(files[0], np.full((64, 64), 7.0))
    monkeypatch.setenv("SUNPY_TIMELAG_CACHE_DIR", str(tmp_path / "psf"))
    assert (psf(304, size=64) == 7).all()
    _cached_psf.cache_clear()


@pytest.mark.parametrize("channel", [1600, 170.5 * u.angstrom, 171 * u.s, "one-seven-one", None])
def test_unknown_channel(channel):
    with pytest.raises(ValueError, match="unknown AIA channel"):
        psf(channel, size=64)


def test_bad_arguments():
    with pytest.raises(ValueError, match="size"):
        psf(171, size=1)
    with pytest.raises(TypeError):
        psf(171, size=64.5)
    with pytest.raises(ValueError, match="non-zero order"):
        psf(171, size=64, diffraction_orders=[0])
    # 335 A entrance spikes are 31.8 pixels apart: none on a 16-pixel grid (aiapy's pattern is 0/0 there).
    with pytest.raises(ValueError, match="no diffraction spike of the given orders falls on a 16 x 16 grid"):
        psf(335, size=16)


def test_kernels_import_without_sunpy():
    # The aia modules alone (the package __init__, which may load the sunpy layers, is bypassed):
    # what a GPU worker with only NumPy/SciPy/CuPy needs.
    code = (
        "import importlib.util, sys, types\n"
        "sys.modules['sunpy'] = None\n"
        "package = types.ModuleType('sunpy_timelag')\n"
        "package.__path__ = importlib.util.find_spec('sunpy_timelag').submodule_search_locations\n"
        "sys.modules['sunpy_timelag'] = package\n"
        "import numpy as np\n"
        "from sunpy_timelag.aia import Deconvolver, deconvolve, psf\n"
        "kernel = np.zeros((32, 32)); kernel[16, 16] = 1\n"
        "assert np.allclose(Deconvolver(kernel, iterations=2)(np.ones((32, 32))), 1)\n"
        "assert np.allclose(deconvolve(np.ones((32, 32)), psf=kernel, iterations=2), 1)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=os.environ.copy())


def test_cache_dir_must_be_a_path():
    with pytest.raises(TypeError, match="cache_dir must be a folder path"):
        psf(171, size=16, cache_dir=False)

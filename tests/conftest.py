import inspect
import os
import warnings

import numpy as np
import pytest
import sunpy.data.test
from astropy.io import fits

try:  # aiapy >= 0.11
    from aiapy.utils import AIApyUserWarning
except ImportError:  # aiapy 0.10; 0.9 spells it AiapyUserWarning
    import aiapy.util

    AIApyUserWarning = getattr(aiapy.util, "AIApyUserWarning", None) or aiapy.util.AiapyUserWarning

AIA_171 = sunpy.data.test.get_test_filepath("aia_171_level1.fits")


def aiapy_psf(channel, **kwargs):
    """
    aiapy's PSF with the installed aiapy's API, on the CPU.

    aiapy >= 0.11: ``calculate_psf`` (with JAX if installed); before: ``psf(..., use_gpu=False)``.
    """
    import aiapy.psf

    if hasattr(aiapy.psf, "calculate_psf"):
        return aiapy.psf.calculate_psf(channel, **kwargs)
    return aiapy.psf.psf(channel, use_gpu=False, **kwargs)


def aiapy_deconvolve(smap, **kwargs):
    """aiapy's ``deconvolve`` on the CPU: ``use_gpu=False`` where aiapy has it (< 0.11; later: JAX if installed)."""
    import aiapy.psf

    if "use_gpu" in inspect.signature(aiapy.psf.deconvolve).parameters:
        kwargs["use_gpu"] = False
    return aiapy.psf.deconvolve(smap, **kwargs)


def write_frames(directory, n_frames=6, cadence=12.0, start_minute=0, order=None, **header_updates):
    """
    Write ``n_frames`` FITS copies of sunpy's 128x128 AIA 171 test image with their own times.

    Frame ``i`` holds ``image + 10 i`` (so frames are told apart), ``T_OBS`` at ``i * cadence``
    seconds, ``EXPTIME = 2 + 0.1 i`` and a pointing jitter of ``0.01 i`` pixel. Files are
    named in ``order`` (default: reversed time order, to exercise sorting).

    Returns
    -------
    list of str
        The paths, in time order.
    """
    os.makedirs(directory, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)  # BLANK on float data
        image, template = fits.getdata(AIA_171, header=True)
    image = image.astype(np.int16)
    paths = []
    order = order if order is not None else list(range(n_frames))[::-1]
    for i in range(n_frames):
        header = template.copy()
        del header["BLANK"]
        seconds = start_minute * 60 + 1.34 + i * cadence
        header["T_OBS"] = f"2011-02-15T00:{int(seconds // 60):02d}:{seconds % 60:05.2f}Z"
        header["EXPTIME"] = 2.0 + 0.1 * i
        header["CRPIX1"] += 0.01 * i
        header.update(header_updates)
        path = os.path.join(str(directory), f"frame_{order[i]:03d}.fits")
        fits.writeto(path, (image + 10 * i).astype(np.int16), header)
        paths.append(path)
    return paths


@pytest.fixture
def aia_frames(tmp_path):
    """Six AIA 171 frames at 12 s cadence, written with names in reverse time order."""
    return write_frames(tmp_path / "171")

import os
import warnings

import numpy as np
import pytest
import sunpy.data.test
from astropy.io import fits

# aiapy's API as the installed release spells it (0.9 to 0.12)
from sunpy_timelag.aia._compat import aiapy_deconvolve, aiapy_psf, aiapy_user_warning  # noqa: F401

AIApyUserWarning = aiapy_user_warning()

AIA_171 = sunpy.data.test.get_test_filepath("aia_171_level1.fits")


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

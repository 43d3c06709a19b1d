"""The array kernels import without sunpy or ndcube, as on a GPU worker that has only NumPy/SciPy/CuPy."""
import subprocess
import sys


def test_kernels_import_without_sunpy_or_ndcube():
    code = (
        "import sys; sys.modules.update(sunpy=None, ndcube=None, gwcs=None)\n"
        "import sunpy_timelag, sunpy_timelag.lags, sunpy_timelag.backend, sunpy_timelag.aia\n"
        "from sunpy_timelag.aia.deconvolve import Deconvolver\n"
        "print('ok')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"

"""
Benchmark of `sunpy_timelag.aia.deconvolve` against `aiapy.psf.deconvolve` on a 4096 x 4096 image.

Run as ``python benchmarks/bench_deconvolve.py [--iterations 25] [--channel 171] [--repeat R] [--size 4096]``.

The image is the 128 x 128 AIA 171 test image of sunpy, interpolated to 4096 x 4096 (``--size``: a
smaller one, with the PSF on that grid, for a quick check), with Poisson noise; the PSF is
``sunpy_timelag.aia.psf(channel)`` (the same values as aiapy's). The first output line says which
aiapy runs and whether with JAX (aiapy >= 0.11 uses JAX when it is installed, else NumPy; before
0.11 it is run with ``use_gpu=False``). In the same run the script times, on the same Map and PSF,
best of ``--repeat`` (default 2 with JAX, whose first call compiles; else 1):

* aiapy's ``deconvolve`` (float64; its PSF transform included);
* ours, float32 (default) and float64, a Map in and out, PSF transform included (blocked passes
  with ducc0 if installed, else whole-array scipy.fft);
* ours, float32, one more frame through a warm `Deconvolver` (PSF transform already done: the per
  frame cost in a cube);
* a naive float32 loop with ``scipy.fft`` (``workers=-1``), for reference;

and prints wall seconds, speed-ups (aiapy time / ours) and max |ours - aiapy| / max(aiapy). The CPU
seconds (all threads of the process) are printed too: on a machine shared with other jobs the wall
times, and the gain from ``scipy.fft``'s threads, depend on the load; the CPU-time ratio does not.
"""
import argparse
import importlib.util

import astropy.units as u
import numpy as np
import scipy.fft
import scipy.ndimage
import sunpy.data.test
import sunpy.map
from _aiapy import USES_JAX, aiapy_deconvolve, describe
from _timing import best, comparison

from sunpy_timelag.aia import Deconvolver, deconvolve, psf


def test_map(size=4096, seed=0):
    """A ``size`` x ``size`` AIA 171 Map: sunpy's test image interpolated, with Poisson noise."""
    small = sunpy.map.Map(sunpy.data.test.get_test_filepath("aia_171_level1.fits"))
    counts = np.clip(scipy.ndimage.zoom(small.data.astype(float), size / small.data.shape[0], order=1), 0, None)
    data = np.random.default_rng(seed).poisson(counts).astype(np.float64)
    return sunpy.map.Map(data, small.meta)


def naive(image, kernel, iterations):
    """Richardson-Lucy with float32 ``scipy.fft`` and all cores, written as aiapy writes it."""
    otf = scipy.fft.rfft2(np.fft.ifftshift(kernel)).astype(np.complex64)
    otf_conj = otf.conj()
    image = np.clip(image, 0, None).astype(np.float32)
    estimate = image.copy()
    for _ in range(iterations):
        ratio = image / scipy.fft.irfft2(scipy.fft.rfft2(estimate, workers=-1) * otf, workers=-1)
        estimate = estimate * scipy.fft.irfft2(scipy.fft.rfft2(ratio, workers=-1) * otf_conj, workers=-1)
    return estimate


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--iterations", type=int, default=25)
    parser.add_argument("--channel", type=int, default=171)
    parser.add_argument("--repeat", type=int, default=2 if USES_JAX else 1, help="runs of each, best of")
    parser.add_argument("--size", type=int, default=4096, help="image side (default 4096, the full frame)")
    args = parser.parse_args()
    n, repeat, size = args.iterations, args.repeat, args.size
    aia_map = test_map(size)
    kernel = psf(args.channel * u.angstrom, size=size)
    library = "ducc0" if importlib.util.find_spec("ducc0") else "scipy.fft"
    print(describe())
    print(f"{size} x {size}, {n} iterations, channel {args.channel} A, best of {repeat}; our CPU FFTs: {library}")

    reference, aiapy_wall, aiapy_cpu = best(lambda: aiapy_deconvolve(aia_map, psf=kernel, iterations=n).data,
                                            repeat)

    def report(label, wall, cpu, result=None):
        print(comparison(label, wall, cpu, aiapy_wall, aiapy_cpu, result, reference))

    report("aiapy deconvolve (float64)", aiapy_wall, aiapy_cpu)
    for dtype in (np.float32, np.float64):
        result, wall, cpu = best(lambda d=dtype: deconvolve(aia_map, psf=kernel, iterations=n, dtype=d).data,
                                 repeat)
        report(f"ours, {np.dtype(dtype).name}, Map", wall, cpu, result)
    warm = Deconvolver(kernel, iterations=n)
    warm.transfer_function(aia_map.data.shape)
    report("ours, float32, warm Deconvolver", *best(lambda: warm(aia_map.data), repeat)[1:])
    result, wall, cpu = best(lambda: naive(aia_map.data, kernel, n), repeat)
    report("naive scipy.fft float32", wall, cpu, result)


if __name__ == "__main__":
    main()

"""
Benchmark of `sunpy_timelag.aia.register` against `aiapy.calibrate.register` on a 4096 x 4096 frame.

Run as ``python benchmarks/bench_register.py [--repeat 3] [--size 4096]``.

The frame is sunpy's 128 x 128 AIA 171 test image interpolated to 4096 x 4096 (``--size``: a smaller
frame, for a quick check), with Poisson noise,
in float32 (as AIA level-1 data), with a typical level-1 header: 0.599489 arcsec per pixel, the
Sun's centre a few pixels off the frame's centre and a roll of -0.13 degree. In the same run, on the
same Map, the script times (best of ``--repeat``):

* aiapy's ``register`` (sunpy's ``'scipy'`` rotation method, single-threaded);
* ours, a Map in and out, all cores, and on one thread (`Registration` with ``workers=1``);
* aiapy's ``register`` with ``method="sunpy_timelag"`` (our kernel through sunpy's rotate);

and prints wall and CPU seconds per frame, speed-ups (aiapy time / ours) and max |ours - aiapy| /
max(aiapy). The machine may be shared: compare the ratios, measured in the same run. The first line
gives the aiapy version (its ``register`` runs on NumPy/SciPy whatever the release: JAX, which aiapy
>= 0.11 uses for the PSF, plays no part).
"""
import argparse
import os

import aiapy
import aiapy.calibrate
import numpy as np
import scipy.ndimage
import sunpy.data.test
import sunpy.map
from _timing import best, comparison

from sunpy_timelag.aia import register
from sunpy_timelag.aia.register import ROTATION_METHOD, Registration


def full_frame(size=4096, seed=0):
    """
    A ``size`` x ``size`` AIA 171 level-1 Map: the test image interpolated, noise, a typical pointing.

    The full disk at any size: 0.599489 arcsec per pixel at 4096 pixels, binned (coarser) below.
    """
    small = sunpy.map.Map(sunpy.data.test.get_test_filepath("aia_171_level1.fits"))
    counts = np.clip(scipy.ndimage.zoom(small.data.astype(float), size / small.data.shape[0], order=1), 0, None)
    data = np.random.default_rng(seed).poisson(counts).astype(np.float32)
    meta = dict(small.meta)
    scale = 0.599489 * 4096 / size
    meta.update(naxis1=size, naxis2=size, cdelt1=scale, cdelt2=scale, crpix1=size / 2 + 0.5 + 3.7,
                crpix2=size / 2 + 0.5 - 2.2, crota2=-0.13, crval1=0.0, crval2=0.0)
    return sunpy.map.Map(data, meta)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--size", type=int, default=4096, help="frame side (default 4096, the full frame)")
    args = parser.parse_args()
    frame = full_frame(args.size)
    registration = Registration.from_map(frame)
    register(frame)  # compile (or load) the numba kernels
    print(f"aiapy {aiapy.__version__}")
    print(f"{args.size} x {args.size} float32 frame, {os.cpu_count()} cores, best of {args.repeat}")

    reference, aiapy_wall, aiapy_cpu = best(lambda: aiapy.calibrate.register(frame).data, args.repeat)

    def report(label, wall, cpu, result=None):
        print(comparison(label, wall, cpu, aiapy_wall, aiapy_cpu, result, reference, unit="s/frame"))

    report("aiapy register (scipy)", aiapy_wall, aiapy_cpu)
    runs = {
        "ours, Map, all cores": lambda: register(frame).data,
        "ours, one thread": lambda: registration(frame.data, workers=1),
        f"aiapy register, method={ROTATION_METHOD!r}": lambda: aiapy.calibrate.register(
            frame, method=ROTATION_METHOD).data,
    }
    for label, run in runs.items():
        result, wall, cpu = best(run, args.repeat)
        report(label, wall, cpu, result)

if __name__ == "__main__":
    main()

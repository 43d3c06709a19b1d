"""
Benchmark: building a lazy cube over thousands of FITS files.

Writes ``--n-files`` AIA-like files (sunpy's AIA 171 test header, 189 cards, one
image each) and times, in the same run:

* ``TimelagCube.from_files`` (header scan, checks, gWCS, Dask graph);
* ``sunpy.map.Map(files, sequence=True)``, the peer, which reads every file's data;
* a serial ``astropy.io.fits.getheader`` loop, the floor for reading the headers alone;

and the memory the cube holds per frame (traced allocations of ``from_files`` that stay alive with
the cube), and the part of it that is the frames' headers (what dropping ``meta["headers"]`` frees).

Run with ``python benchmarks/bench_header_scan.py [--n-files 2000]``.
"""
import argparse
import gc
import os
import tempfile
import time
import tracemalloc
import warnings

import numpy as np
import sunpy.data.test
import sunpy.map
from astropy.io import fits

from sunpy_timelag import TimelagCube


def write_files(directory, n_files, shape):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)
        header = fits.getheader(sunpy.data.test.get_test_filepath("aia_171_level1.fits"))
    del header["BLANK"]
    header["NAXIS1"], header["NAXIS2"] = shape[::-1]
    image = np.zeros(shape, dtype=np.int16)
    paths = []
    for i in range(n_files):
        seconds = 12.0 * i
        header["T_OBS"] = f"2011-02-15T{int(seconds // 3600):02d}:{int(seconds % 3600 // 60):02d}:{seconds % 60:05.2f}Z"
        path = os.path.join(directory, f"aia_{i:05d}.fits")
        fits.writeto(path, image, header)
        paths.append(path)
    return paths


def best_of(function, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def held_per_frame(pattern, n_files):
    """
    Bytes per frame that a cube from ``from_files`` holds, and of them its headers' (tracemalloc).

    Measured in its own pass: tracing slows Python down.
    """
    TimelagCube.from_files(pattern)  # imports and caches first
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        cube = TimelagCube.from_files(pattern)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - base
        del cube.meta["headers"]
        gc.collect()
        headers = held - (tracemalloc.get_traced_memory()[0] - base)
    finally:
        tracemalloc.stop()
    return held / n_files, headers / n_files


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--n-files", type=int, default=2000)
    parser.add_argument("--size", type=int, default=64, help="image side (the scan reads no pixels)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        paths = write_files(directory, args.n_files, (args.size, args.size))
        pattern = os.path.join(directory, "*.fits")
        ours = best_of(lambda: TimelagCube.from_files(pattern), args.repeat)
        headers = best_of(lambda: [fits.getheader(p) for p in paths], args.repeat)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sunpy_maps = best_of(lambda: sunpy.map.Map(paths, sequence=True), 1)
        held, held_by_headers = held_per_frame(pattern, args.n_files)
    print(f"{args.n_files} files, {os.cpu_count()} cores")
    print(f"{'method':<40}{'seconds':>10}{'ms/file':>10}{'ratio':>8}")
    for name, seconds in [
        ("TimelagCube.from_files", ours),
        ("serial astropy getheader (headers only)", headers),
        ("sunpy.map.Map(sequence=True)", sunpy_maps),
    ]:
        print(f"{name:<40}{seconds:>10.2f}{1e3 * seconds / args.n_files:>10.2f}{seconds / ours:>8.1f}")
    print(f"memory held by the cube: {held / 1e3:.1f} KB per frame, of which its headers: "
          f"{held_by_headers / 1e3:.1f} KB per frame (tracemalloc)")


if __name__ == "__main__":
    main()

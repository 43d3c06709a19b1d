"""
Archive scale: the user path from files, for a region and for the whole field, with bytes read and peak memory.

Run as ``python benchmarks/bench_archive.py`` (defaults: 2 channels x 300 frames of 1024 x 1024 float32,
1.3 GB on disk, a 256 x 256 region); ``--frames 1000`` is the 8.4 GB case of issue 10. The observation is
written once to ``--directory`` (default a temporary folder, removed at the end unless ``--keep``): every
frame a smooth background, a pulse delayed by a known lag that varies across the field, and noise.

Each case runs in a fresh Python process, so that its peak resident memory (``ru_maxrss``) is its own,
and reports the wall time, the peak RSS as a fraction of the data on disk, and the bytes it read
(``rchar`` of ``/proc/self/io``: all bytes read through system calls, cached or not). The cases:

* ``region``: ``from_files(...).normalize_exposure().submap(region)``, then ``timelag_maps`` of the pair;
* ``region, whole frames``: the same with the files read whole and one chunk per frame rechunked
  (the data made NumPy-backed by ``as_numpy()``, which hides the files from the cube: the path before
  region-aware reading);
* ``full field``: the time-lag map of the whole field, ``from_files(...).normalize_exposure()``;
* ``sunkit-image, region``: the region's data read with sunpy (one Map per file, cropped) and
  ``sunkit_image.time_lag.time_lag`` on it — the seed notebook's approach.
"""
import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PAIR = (335, 171)
LAG_BOUNDS_MIN = 20.0


def write_observation(directory, n_frames, size, cadence=12.0):
    """Write ``n_frames`` float32 frames per channel of the pair; return the bytes written."""
    import astropy.units as u
    from astropy.io import fits
    from astropy.time import Time

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size] / size
    background = (1 + 0.5 * np.sin(6 * x) * np.cos(4 * y)).astype(np.float32)
    lag = 300.0 * (1 + np.sin(3 * x + 2 * y))  # seconds, 0 to 600
    start = Time("2011-02-15T00:00:00")
    total = 0
    for channel, delay in zip(PAIR, (0.0, 1.0), strict=True):
        folder = directory / str(channel)
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n_frames):
            t = i * cadence
            pulse = np.exp(-0.5 * ((t - 0.4 * n_frames * cadence - delay * lag) / 400.0) ** 2)
            data = (background + 3 * pulse + 0.05 * rng.standard_normal((size, size))).astype(np.float32)
            header = fits.Header({
                "TELESCOP": "SDO/AIA", "INSTRUME": "AIA", "WAVELNTH": channel, "WAVEUNIT": "angstrom",
                "CTYPE1": "HPLN-TAN", "CTYPE2": "HPLT-TAN", "CUNIT1": "arcsec", "CUNIT2": "arcsec",
                "CDELT1": 2.4, "CDELT2": 2.4, "CRPIX1": size / 2 + 0.5, "CRPIX2": size / 2 + 0.5,
                "CRVAL1": 0.0, "CRVAL2": 0.0, "DSUN_OBS": 1.48e11, "HGLN_OBS": 0.0, "HGLT_OBS": 0.0,
                "RSUN_REF": 696000000.0, "EXPTIME": 2.0, "T_OBS": (start + t * u.s).isot,
                "DATE-OBS": (start + (t - 1) * u.s).isot, "BUNIT": "DN",
            })
            path = folder / f"frame_{i:05d}.fits"
            fits.writeto(path, data, header)
            total += path.stat().st_size
    return total


def rchar():
    with open("/proc/self/io") as io:
        return int(next(line for line in io if line.startswith("rchar")).split()[1])


def run_case(case, directory, region):
    """Run one case in this process; print a JSON line of its figures."""
    import astropy.units as u

    from sunpy_timelag import TimelagCube, timelag_maps

    start, read = time.perf_counter(), rchar()
    cubes = [TimelagCube.from_files(str(directory / str(channel) / "*.fits")) for channel in PAIR]
    size = cubes[0].data.shape[1]
    lo, hi = (size - region) // 2, (size + region) // 2
    bounds = [-LAG_BOUNDS_MIN, LAG_BOUNDS_MIN] * u.min
    if case == "region":
        cubes = [cube.normalize_exposure()[:, lo:hi, lo:hi] for cube in cubes]
    elif case == "region, whole frames":
        cubes = [cube.as_numpy().normalize_exposure()[:, lo:hi, lo:hi] for cube in cubes]
    elif case == "full field":
        cubes = [cube.normalize_exposure() for cube in cubes]
    if case == "sunkit-image, region":
        import sunpy.map
        from sunkit_image.time_lag import time_lag

        series = []
        for cube in cubes:
            frames = [sunpy.map.Map(loader.file.path) for loader in cube._file_source().loaders]
            series.append(np.stack([f.data[lo:hi, lo:hi] / f.exposure_time.to_value(u.s) for f in frames]))
        seconds = (cubes[0].time - cubes[0].time[0]).to_value(u.s) * u.s
        lag = time_lag(series[0], series[1], seconds, lag_bounds=bounds)
        result = np.asarray(lag.to_value(u.s))
    else:
        result = timelag_maps(cubes, lag_bounds=bounds)[PAIR].timelag.data
    wall, read = time.perf_counter() - start, rchar() - read
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"case": case, "wall": wall, "read": read, "peak": peak,
                      "median_lag": float(np.nanmedian(result)), "pixels": int(result.size)}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=300, help="frames per channel")
    parser.add_argument("--size", type=int, default=1024, help="pixels a side")
    parser.add_argument("--region", type=int, default=256, help="pixels a side of the region")
    parser.add_argument("--directory", type=Path, help="where to write (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the files")
    parser.add_argument("--skip", nargs="*", default=[], help="cases to leave out")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        return run_case(args.case, args.directory, args.region)

    directory = args.directory or Path(tempfile.mkdtemp(prefix="bench-archive-"))
    try:
        if not (directory / str(PAIR[1])).exists():
            start = time.perf_counter()
            on_disk = write_observation(directory, args.frames, args.size)
            print(f"wrote {2 * args.frames} frames of {args.size} x {args.size} float32 "
                  f"({on_disk / 1e9:.2f} GB) in {time.perf_counter() - start:.0f} s")
        on_disk = sum(p.stat().st_size for p in directory.rglob("*.fits"))
        region_bytes = 2 * args.frames * args.region * args.size * 4  # the rows the region spans, float32
        print(f"{2 * args.frames} frames, {on_disk / 1e9:.2f} GB on disk; region {args.region} x {args.region} "
              f"(its rows: {region_bytes / 1e9:.3f} GB); lag bounds +-{LAG_BOUNDS_MIN:.0f} min")
        print(f"{'case':24s} {'wall [s]':>9s} {'peak RSS [GB]':>14s} {'RSS/disk':>9s} {'read [GB]':>10s} "
              f"{'read/rows':>10s} {'median lag [s]':>15s}")
        cases = ["region", "region, whole frames", "sunkit-image, region", "full field"]
        for case in [c for c in cases if c not in args.skip]:
            output = subprocess.run([sys.executable, __file__, "--case", case, "--directory", str(directory),
                                     "--region", str(args.region)], capture_output=True, text=True, check=True)
            figures = json.loads(output.stdout.strip().splitlines()[-1])
            rows = figures["read"] / region_bytes if "region" in case else float("nan")
            print(f"{case:24s} {figures['wall']:9.1f} {figures['peak'] / 1e9:14.2f} {figures['peak'] / on_disk:9.2f} "
                  f"{figures['read'] / 1e9:10.2f} {rows:10.2f} {figures['median_lag']:15.1f}")
    finally:
        if not args.keep and args.directory is None:
            shutil.rmtree(directory)


if __name__ == "__main__":
    main()

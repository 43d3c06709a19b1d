"""
Benchmark of the time-lag kernels (`sunpy_timelag.lags`) against sunkit-image.

Run as ``python benchmarks/bench_lags.py`` (``--quick`` for a smoke run). Every
case times sunkit-image's ``time_lag`` and the kernels on the same in-memory
NumPy data in the same run, and prints microseconds per pixel and the speed-up
(sunkit time / our time), the peak traced memory (``tracemalloc``) as a
multiple of the input size, and the float32-vs-float64 deviation. sunkit-image
computes only the lag; the kernels compute lag, peak correlation and the
on-bound flag in the same pass.

Timings are interleaved over ``--repeat`` rounds and the best is kept (the
machine is shared); the memory is traced in the first round.

Cases (the targets of issue 3):

* ``pair-180``: one pair, 180 steps at 120 s, lag bounds +-3 h, 500 x 500 px;
* ``pair-1800``: one pair, 1800 steps at 12 s, lag bounds +-3 h, 100 x 100 px;
* ``pairs-15``: the 15 pairs of 6 channels, 180 steps, 150 x 150 px, one ``timelag_pairs``
  call against 15 ``time_lag`` calls.

The rows ``TimelagCube ...`` run the whole user path, `sunpy_timelag.timelag_maps`
(alignment on the common time grid, rechunking, kernels, sunpy Maps of the results),
on the same data held in memory as `~sunpy_timelag.TimelagCube` s: ``persisted``
as a prepared cube is kept (`TimelagCube.persist`: whole series per chunk), and
``from maps`` as `TimelagCube.from_maps` builds them from sunpy Maps of NumPy frames (stacked
once into whole series per chunk). ``benchmarks/bench_user_path.py`` runs the user path from files.
"""

import argparse
import itertools
import time
import tracemalloc

import astropy.units as u
import dask
import dask.array as da
import numpy as np
import sunpy.map
from astropy.coordinates import SkyCoord
from astropy.time import Time
from sunkit_image.time_lag import time_lag
from sunpy.coordinates import frames

from sunpy_timelag import HOT_TO_COOL, TimelagCube, lags, timelag_maps

BOUNDS = (-3 * 3600.0, 3 * 3600.0)
TRACED = ("sunkit-image time_lag", "timelag (default)")


def measure(func, trace):
    """Wall time of one call of ``func`` (s) and, if ``trace``, its peak traced memory (bytes)."""
    if trace:
        tracemalloc.start()
    start = time.perf_counter()
    try:
        func()
        return time.perf_counter() - start, tracemalloc.get_traced_memory()[1] if trace else float("nan")
    finally:
        tracemalloc.stop()


def sunkit_pairs(channels, cadence):
    """sunkit-image ``time_lag`` for every pair of ``channels``."""
    times = np.arange(channels[0].shape[0]) * cadence * u.s
    for a, b in itertools.combinations(channels, 2):
        time_lag(a, b, times, lag_bounds=BOUNDS * u.s)


def our_pairs(channels, cadence, **kwargs):
    """`lags.timelag_pairs` for every pair of ``channels`` (one call)."""
    return lags.timelag_pairs(dict(enumerate(channels)), None, cadence, lag_bounds=BOUNDS, **kwargs)


def dask_pairs(channels, cadence, **kwargs):
    """`our_pairs` on Dask arrays, computed with the threaded scheduler."""
    chunks = (-1, 125, 125) if channels[0].shape[1] >= 250 else (-1, "auto", "auto")
    lazy = our_pairs([da.from_array(c, chunks=chunks, name=False) for c in channels], cadence, **kwargs)
    with dask.config.set(scheduler="threads"):
        return lags.compute(lazy)


def as_cubes(channels, cadence):
    """The channels as `TimelagCube` s of sunpy Maps of AIA-like in-memory frames."""
    start = Time("2011-02-15T00:00:00")
    centre = SkyCoord(0 * u.arcsec, 0 * u.arcsec, frame=frames.Helioprojective(observer="earth", obstime=start))
    cubes = []
    for channel, data in zip(HOT_TO_COOL, channels, strict=False):
        header = sunpy.map.make_fitswcs_header(data[0], centre, scale=[2.4, 2.4] * u.arcsec / u.pix,
                                               wavelength=channel * u.AA, exposure=2 * u.s)
        maps = [sunpy.map.Map(frame, {**header, "t_obs": (start + i * cadence * u.s).isot})
                for i, frame in enumerate(data)]
        cubes.append(TimelagCube.from_maps(maps))
    return cubes


def cube_pairs(cubes):
    """`timelag_maps` over every pair of ``cubes``, as a user calls it."""
    return timelag_maps(cubes, lag_bounds=BOUNDS * u.s)


def run_case(name, n_channels, n_times, cadence, size, repeat, memory):
    """Time (and optionally trace) every method on one case; return table rows and deviations."""
    rng = np.random.default_rng(0)
    channels = [rng.random((n_times, size, size)) for _ in range(n_channels)]
    n_pixels = size * size
    n_pairs = n_channels * (n_channels - 1) // 2
    methods = {
        "sunkit-image time_lag": lambda: sunkit_pairs(channels, cadence),
        "timelag refine=False": lambda: our_pairs(channels, cadence, refine=False),
        "timelag (default)": lambda: our_pairs(channels, cadence),
        "timelag float32": lambda: our_pairs(channels, cadence, dtype=np.float32),
        "timelag dask threads": lambda: dask_pairs(channels, cadence),
        "TimelagCube persisted": lambda: cube_pairs(persisted),
        "TimelagCube from maps": lambda: cube_pairs(cubes),
    }
    cubes = as_cubes(channels, cadence)
    persisted = [cube.persist() for cube in cubes]
    input_bytes = sum(c.nbytes for c in channels)
    seconds, traced = dict.fromkeys(methods, float("inf")), dict.fromkeys(methods, float("nan"))
    for round_ in range(repeat):  # interleaved, so that a busy moment hits every method alike
        for method, func in methods.items():
            elapsed, memory_ = measure(func, trace=memory and round_ == 0 and method in TRACED)
            seconds[method] = min(seconds[method], elapsed)
            traced[method] = memory_ if round_ == 0 else traced[method]
    reference = seconds["sunkit-image time_lag"]
    rows = [
        (name, method, t, t / (n_pixels * n_pairs) * 1e6, reference / t, traced[method] / input_bytes)
        for method, t in seconds.items()
    ]
    return rows, deviation(channels[:2], cadence)


def deviation(channels, cadence):
    """float32 vs float64 results and refine=False vs sunkit-image on one pair."""
    a, b = channels
    times = np.arange(a.shape[0]) * cadence * u.s
    sunkit = time_lag(a, b, times, lag_bounds=BOUNDS * u.s).value
    exact64 = lags.timelag(a, b, cadence, BOUNDS, refine=False)
    exact32 = lags.timelag(a, b, cadence, BOUNDS, refine=False, dtype=np.float32)
    fine64 = lags.timelag(a, b, cadence, BOUNDS)
    fine32 = lags.timelag(a, b, cadence, BOUNDS, dtype=np.float32)
    return {
        "refine=False lag == sunkit (fraction of pixels)": np.mean(exact64.lag == sunkit),
        "float32: max |corr32 - corr64|": np.max(np.abs(exact32.correlation - exact64.correlation)),
        "float32: lag differs (fraction of pixels, refine=False)": np.mean(exact32.lag != exact64.lag),
        "float32: median |lag32 - lag64| [s] (refine=True)": np.median(np.abs(fine32.lag - fine64.lag)),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--repeat", type=int, default=2, help="interleaved timings per method (best kept)")
    parser.add_argument("--no-memory", action="store_true", help="skip the tracemalloc runs")
    args = parser.parse_args()
    scale = 5 if args.quick else 1
    cases = [
        ("pair-180", 2, 180, 120.0, 500 // scale),
        ("pair-1800", 2, 1800, 12.0, 100 // scale),
        ("pairs-15", 6, 180, 120.0, 150 // scale),
    ]
    print(f"{'case':<10} {'method':<22} {'time [s]':>9} {'us/px/pair':>11} {'speed-up':>9} {'mem/inputs':>11}")
    print(f"(dask: {dask.config.get('scheduler', 'threads')} scheduler)")
    for case in cases:
        rows, devs = run_case(*case, repeat=args.repeat, memory=not args.no_memory)
        for row in rows:
            print(f"{row[0]:<10} {row[1]:<22} {row[2]:>9.3f} {row[3]:>11.2f} {row[4]:>8.1f}x {row[5]:>11.2f}")
        for label, value in devs.items():
            print(f"{'':<10} {label}: {value:.3g}")


if __name__ == "__main__":
    main()

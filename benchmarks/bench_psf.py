"""
Benchmark of `sunpy_timelag.aia.psf` against `aiapy.psf.psf` at full resolution (4096 x 4096).

Run as ``python benchmarks/bench_psf.py [--channel 171] [--full]``.

Our time is the best of three cold computations (in-memory cache cleared) of the full PSF, all 201
diffraction orders. aiapy's full PSF takes about ten minutes here, so by default aiapy is timed in
the same run with 2 and with 4 non-zero orders (12 and 24 spike exponentials plus the FFTs), and its
full time is *extrapolated* linearly in the number of spikes (1200 with orders -100..100); the
output labels it so. ``--full`` times aiapy's full PSF once instead, and also compares all orders.
The deviation is max |ours - aiapy| / max(aiapy) on the same orders.
"""
import argparse
import time

import aiapy.psf
import astropy.units as u
import numpy as np

from sunpy_timelag.aia.psf import _cached_psf, psf

N_ARMS = 4 + 2  # entrance-filter arms + focal-plane arms


def timed(func):
    """Result of ``func()`` and its wall time (seconds)."""
    start = time.perf_counter()
    result = func()
    return result, time.perf_counter() - start


def ours_cold(channel, orders=None):
    """Best of three uncached computations of our PSF: (array, seconds)."""
    times = []
    for _ in range(3):
        _cached_psf.cache_clear()
        result, seconds = timed(lambda: psf(channel, diffraction_orders=orders))
        times.append(seconds)
    return result, min(times)


def deviation(ours, reference):
    return np.abs(ours - reference).max() / reference.max()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--channel", type=int, default=171)
    parser.add_argument("--full", action="store_true", help="time aiapy's full PSF (about 10 min)")
    args = parser.parse_args()
    channel = args.channel * u.angstrom
    ours, ours_time = ours_cold(channel)
    print(f"channel {args.channel} A, 4096 x 4096, orders -100..100")
    print(f"  sunpy_timelag psf          {ours_time:8.2f} s  (best of 3, cold)")

    if args.full:
        reference, aiapy_time = timed(lambda: aiapy.psf.psf(channel, use_gpu=False))
        label = "measured"
        print(f"  aiapy psf                  {aiapy_time:8.2f} s  (measured once)")
        print(f"  max deviation / peak       {deviation(ours, reference):.2e}  (all orders)")
    else:
        spike_counts, times = [], []
        for orders in ([-1, 1], [-2, -1, 1, 2]):
            reference, seconds = timed(lambda o=orders: aiapy.psf.psf(channel, diffraction_orders=o,
                                                                       use_gpu=False))
            spike_counts.append(len(orders) * N_ARMS)
            times.append(seconds)
            mine, mine_time = ours_cold(channel, orders)
            print(f"  orders {str(orders):15s}  aiapy {seconds:7.2f} s  ours {mine_time:6.3f} s  "
                  f"max deviation / peak {deviation(mine, reference):.2e}")
        slope, intercept = np.polyfit(spike_counts, times, 1)
        aiapy_time = intercept + slope * 200 * N_ARMS
        label = "extrapolated"
        print(f"  aiapy psf                  {aiapy_time:8.1f} s  (EXTRAPOLATED from 12 and 24 spikes to 1200)")
    print(f"  speed-up vs aiapy          {aiapy_time / ours_time:8.0f} x  (aiapy time {label})")


if __name__ == "__main__":
    main()

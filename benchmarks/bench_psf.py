"""
Benchmark of `sunpy_timelag.aia.psf` against `aiapy.psf.psf` at full resolution (4096 x 4096).

Run as ``python benchmarks/bench_psf.py [--channel 171] [--full]``.

Our time is the best of three cold computations (in-memory cache cleared) of the full PSF, all 201
diffraction orders. aiapy's full PSF takes about ten minutes here, so by default aiapy is timed in
the same run with 2 and with 8 non-zero orders (12 and 48 spike exponentials plus the FFTs), and its
full time is *extrapolated* linearly in the number of spikes (1200 with orders -100..100); the
output labels it so. ``--full`` times aiapy's full PSF once instead, and also compares all orders.
Wall and CPU seconds are both given: on a machine shared with other jobs the wall times depend on
the load. The deviation is max |ours - aiapy| / max(aiapy) on the same orders.
"""
import argparse
import time

import aiapy.psf
import astropy.units as u
import numpy as np

from sunpy_timelag.aia.psf import _cached_psf, psf

N_ARMS = 4 + 2  # entrance-filter arms + focal-plane arms


def timed(func):
    """Result of ``func()``, its wall time and the CPU time of this process (seconds)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = func()
    return result, np.array([time.perf_counter() - wall, time.process_time() - cpu])


def ours_cold(channel, orders=None):
    """Best of three uncached computations of our PSF: (array, [wall, cpu] seconds)."""
    times = []
    for _ in range(3):
        _cached_psf.cache_clear()
        result, seconds = timed(lambda: psf(channel, diffraction_orders=orders))
        times.append(seconds)
    return result, np.min(times, axis=0)


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
    print(f"  sunpy_timelag psf     wall {ours_time[0]:8.2f} s   CPU {ours_time[1]:8.2f} s  (best of 3, cold)")

    if args.full:
        reference, aiapy_time = timed(lambda: aiapy.psf.psf(channel, use_gpu=False))
        label = "measured once"
        print(f"  max deviation / peak  {deviation(ours, reference):.2e}  (all orders)")
    else:
        spike_counts, times = [], []
        for orders in ([-1, 1], [-4, -3, -2, -1, 1, 2, 3, 4]):
            reference, seconds = timed(lambda o=orders: aiapy.psf.psf(channel, diffraction_orders=o,
                                                                       use_gpu=False))
            spike_counts.append(len(orders) * N_ARMS)
            times.append(seconds)
            mine, _ = ours_cold(channel, orders)
            print(f"  {len(orders)} orders: aiapy wall {seconds[0]:6.2f} s   CPU {seconds[1]:6.2f} s  "
                  f"max deviation / peak {deviation(mine, reference):.2e}")
        slope = (times[1] - times[0]) / (spike_counts[1] - spike_counts[0])
        aiapy_time = times[0] + slope * (200 * N_ARMS - spike_counts[0])
        label = "EXTRAPOLATED from 12 and 48 spikes to 1200"
    print(f"  aiapy psf             wall {aiapy_time[0]:8.1f} s   CPU {aiapy_time[1]:8.1f} s  ({label})")
    ratio = aiapy_time / ours_time
    print(f"  speed-up vs aiapy     wall {ratio[0]:8.0f} x   CPU {ratio[1]:8.0f} x  (aiapy {label})")


if __name__ == "__main__":
    main()

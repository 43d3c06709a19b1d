"""
Benchmark of `sunpy_timelag.aia.psf` against aiapy's PSF at full resolution (4096 x 4096).

Run as ``python benchmarks/bench_psf.py [--channel 171] [--orders 100] [--repeat R] [--full]``.

aiapy's PSF is ``aiapy.psf.calculate_psf`` for aiapy >= 0.11 (with JAX when JAX is installed, else
NumPy), ``aiapy.psf.psf(..., use_gpu=False)`` before; the first output line says which aiapy and
whether it uses JAX. Our time is the best of three cold computations (in-memory cache cleared) of the
full PSF, each with one read of the result, diffraction orders -N..N (``--orders N``, default 100 as
aiapy's). aiapy with JAX is timed on the same orders, best of ``--repeat`` (default 2: the first call
includes JAX's compilation; the output gives both). aiapy with NumPy takes about ten minutes for all
orders, so unless ``--full`` (or N <= 4) it is timed in the same run with 2 and with 8 non-zero
orders (12 and 48 spike exponentials plus the FFTs), and its full time is *extrapolated* linearly in
the number of spikes; the output labels it so. Wall and CPU seconds are both given: on a machine
shared with other jobs the wall times depend on the load. The deviation is max |ours - aiapy| /
max(aiapy) on the same orders.
"""
import argparse
import time

import astropy.units as u
import numpy as np
from _aiapy import USES_JAX, aiapy_psf, describe

from sunpy_timelag.aia.psf import _cached_psf, psf

N_ARMS = 4 + 2  # entrance-filter arms + focal-plane arms


def timed(func):
    """Result of ``func()``, its wall time and the CPU time of this process (seconds)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = func()
    return result, np.array([time.perf_counter() - wall, time.process_time() - cpu])


def ours_cold(channel, orders):
    """
    Best of three uncached computations of our PSF: (array, [wall, cpu] seconds). Each is timed up
    to a read of the whole array: the system maps the pages the computation never wrote (where no
    spike reaches, the PSF is 0) on their first access.
    """
    times = []
    for _ in range(3):
        _cached_psf.cache_clear()
        result, seconds = timed(lambda: _read(psf(channel, diffraction_orders=orders)))
        times.append(seconds)
    return result, np.min(times, axis=0)


def _read(array):
    array.sum()
    return array


def deviation(ours, reference):
    return np.abs(ours - reference).max() / reference.max()


def measured(channel, orders, repeat):
    """aiapy's PSF on ``orders``, timed ``repeat`` times: (array, best [wall, cpu], label)."""
    runs = [timed(lambda: aiapy_psf(channel, diffraction_orders=orders)) for _ in range(repeat)]
    best = np.min([seconds for _, seconds in runs], axis=0)
    label = f"best of {repeat}"
    if USES_JAX and repeat > 1:
        label += f"; first call, with JAX's compilation, {runs[0][1][0]:.1f} s"
    return runs[-1][0], best, label


def extrapolated(channel, n):
    """aiapy's time on orders -n..n, extrapolated from 2 and 8 non-zero orders: ([wall, cpu], label)."""
    spike_counts, times = [], []
    for orders in ([-1, 1], [-4, -3, -2, -1, 1, 2, 3, 4]):
        reference, seconds = timed(lambda o=orders: aiapy_psf(channel, diffraction_orders=o))
        spike_counts.append(len(orders) * N_ARMS)
        times.append(seconds)
        mine, _ = ours_cold(channel, orders)
        print(f"  {len(orders)} orders: aiapy wall {seconds[0]:6.2f} s   CPU {seconds[1]:6.2f} s  "
              f"max deviation / peak {deviation(mine, reference):.2e}")
    slope = (times[1] - times[0]) / (spike_counts[1] - spike_counts[0])
    spikes = 2 * n * N_ARMS
    return times[0] + slope * (spikes - spike_counts[0]), f"EXTRAPOLATED from 12 and 48 spikes to {spikes}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--channel", type=int, default=171)
    parser.add_argument("--orders", type=int, default=100, help="diffraction orders -N..N (default 100)")
    parser.add_argument("--repeat", type=int, default=2 if USES_JAX else 1, help="aiapy runs, best of")
    parser.add_argument("--full", action="store_true", help="time aiapy on all orders with NumPy too (minutes)")
    args = parser.parse_args()
    channel = args.channel * u.angstrom
    orders = np.arange(-args.orders, args.orders + 1)
    print(describe())
    ours, ours_time = ours_cold(channel, orders)
    print(f"channel {args.channel} A, 4096 x 4096, orders -{args.orders}..{args.orders}")
    print(f"  sunpy_timelag psf     wall {ours_time[0]:8.2f} s   CPU {ours_time[1]:8.2f} s  (best of 3, cold)")
    if USES_JAX or args.full or args.orders <= 4:
        reference, aiapy_time, label = measured(channel, orders, args.repeat)
        print(f"  max deviation / peak  {deviation(ours, reference):.2e}  (orders -{args.orders}..{args.orders})")
    else:
        aiapy_time, label = extrapolated(channel, args.orders)
    print(f"  aiapy psf             wall {aiapy_time[0]:8.1f} s   CPU {aiapy_time[1]:8.1f} s  ({label})")
    ratio = aiapy_time / ours_time
    print(f"  speed-up vs aiapy     wall {ratio[0]:8.1f} x   CPU {ratio[1]:8.1f} x")


if __name__ == "__main__":
    main()

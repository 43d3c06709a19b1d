"""
A `dask.distributed` cluster against the threaded scheduler, on the user path from files.

Run as ``python benchmarks/bench_cluster.py`` (defaults: 2 channels x 600 frames of 256 x 256 float32, the
case of issue 10). The observation is written once to a temporary folder; then the same analysis —
``from_files(...).normalize_exposure()`` per channel and ``timelag_maps`` of the pair — runs

* on the threaded scheduler (all cores);
* on a `~distributed.LocalCluster` of 1 process (1 thread);
* on a `~distributed.LocalCluster` of 2 processes (1 thread each);

for an I/O-bound case (lags within +-20 min) and a CPU-bound one (all lags). It prints the wall time of
each (best of ``--repeat``), the ratios (cluster / threads; 1 worker / 2 workers), the number of reading
tasks and the pickled size of their graph, and checks that every scheduler gives the same map.
"""
import argparse
import pickle
import shutil
import tempfile
import time
from pathlib import Path

import astropy.units as u
import numpy as np
from bench_archive import PAIR, write_observation


def timed(run, repeat):
    best, result = np.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    import dask
    import distributed

    from sunpy_timelag import TimelagCube, timelag_maps

    directory = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    try:
        on_disk = write_observation(directory, args.frames, args.size)
        cubes = [TimelagCube.from_files(str(directory / str(c) / "*.fits")).normalize_exposure() for c in PAIR]
        print(f"{len(PAIR)} channels x {args.frames} frames of {args.size} x {args.size} float32 "
              f"({on_disk / 1e9:.2f} GB); {dask.__version__=}, {distributed.__version__=}")
        cases = {"I/O-bound (lags +-20 min)": [-20, 20] * u.min, "CPU-bound (all lags)": None}
        for label, bounds in cases.items():
            def run(bounds=bounds):
                return timelag_maps(cubes, lag_bounds=bounds)[PAIR].timelag.data

            graph = cubes[0]._series_data().__dask_graph__()
            print(f"\n{label}: {len(graph)} reading tasks per channel, "
                  f"{len(pickle.dumps(dict(graph))) / 1e3:.0f} kB pickled")
            with dask.config.set(scheduler="threads"):
                threads, expected = timed(run, args.repeat)
            print(f"  {'threads (all cores)':32s} {threads:7.2f} s")
            walls = {}
            for workers in (1, 2):
                with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                              dashboard_address=None) as cluster, distributed.Client(cluster):
                    run()  # warm the workers: imports and numba's cache
                    walls[workers], result = timed(run, args.repeat)
                np.testing.assert_allclose(result, expected, rtol=1e-9, equal_nan=True)
                print(f"  {f'LocalCluster, {workers} process(es)':32s} {walls[workers]:7.2f} s   "
                      f"/ threads {walls[workers] / threads:5.2f}")
            print(f"  2 workers against 1: {walls[1] / walls[2]:.2f}x faster; same maps on every scheduler")
    finally:
        shutil.rmtree(directory)


if __name__ == "__main__":
    main()

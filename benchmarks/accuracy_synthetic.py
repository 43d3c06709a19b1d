"""
Accuracy of the time-lag maps on the built-in synthetic observation, against its ground truth.

Writes the default synthetic observation (six channels, 2 h at 12 s, a dropped 171 frame,
channels observed seconds apart, varying exposures), builds the cubes from the files,
normalises them and computes every hot-to-cool pair with and without the sub-cadence
refinement. Prints, per pair, the median and 90th-percentile absolute error over the
loop pixels and the fraction of them within one cadence.

Run with ``python benchmarks/accuracy_synthetic.py``.
"""
import tempfile

import astropy.units as u
import numpy as np

from sunpy_timelag import TimelagCube, timelag_maps
from sunpy_timelag.data import make_synthetic_observation

BOUNDS = [-1, 1] * u.h


def main():
    with tempfile.TemporaryDirectory() as directory:
        observation = make_synthetic_observation(directory, drop_frame=True)
        cubes = [TimelagCube.from_files(observation.files[c]).normalize_exposure().persist()
                 for c in observation.channels]
        refined = timelag_maps(cubes, lag_bounds=BOUNDS)
        quantised = timelag_maps(cubes, lag_bounds=BOUNDS, refine=False)
    cadence = next(iter(refined.values())).timelag.meta["cadence"]
    print(f"cadence of the common grid: {cadence:.2f} s; errors in s over the loop pixels")
    print(f"{'pair':>8} | {'refined: median':>15} {'p90':>6} {'<1 cad.':>8} | {'quantised: median':>17} {'p90':>6}")
    for pair in refined:
        truth = observation.true_timelag(*pair)
        loops = np.isfinite(truth)
        fine, coarse = (np.abs(maps[pair].timelag.data - truth)[loops] for maps in (refined, quantised))
        print(f"{pair[0]:>4}-{pair[1]:<3} | {np.median(fine):>15.2f} {np.percentile(fine, 90):>6.1f} "
              f"{np.mean(fine <= cadence):>8.1%} | {np.median(coarse):>17.2f} {np.percentile(coarse, 90):>6.1f}")


if __name__ == "__main__":
    main()

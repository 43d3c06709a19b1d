"""
=========================================
Rebinning, Dask and a distributed cluster
=========================================

A `~sunpy_timelag.TimelagCube` holds a Dask array: operations on it build a task graph, and
nothing is read or computed until a result is asked for. This example follows the DKIST
rebinning tutorial: look at the chunks and the graph, rebin the cube with
`~ndcube.NDCube.rebin`, and compute on a `dask.distributed` cluster.
"""
# sphinx_gallery_thumbnail_number = 1

import tempfile
import time

import astropy.units as u
import dask
import matplotlib.pyplot as plt
import numpy as np
from dask.diagnostics import ProgressBar
from distributed import Client, LocalCluster, get_task_stream

from sunpy_timelag import TimelagCube
from sunpy_timelag.data import make_synthetic_observation

# %%
# One chunk per file
# ------------------
# Two channels of a synthetic observation (see the first example), one FITS file per frame, every
# 24 s for two hours.

directory = tempfile.mkdtemp(prefix="sunpy-timelag-example-")
observation = make_synthetic_observation(directory, channels=(335, 171), shape=(64, 64), duration=2 * u.h,
                                         cadence=24 * u.s)
c171 = TimelagCube.from_files(f"{directory}/171/*.fits")
c335 = TimelagCube.from_files(f"{directory}/335/*.fits")

# %%
# The data are a Dask array with one chunk per file: reading a chunk reads one file. The graph
# has one task per file and nothing else yet.

print(c171.data)
print("chunks along time:", len(c171.data.chunks[0]), " tasks in the graph:", len(c171.data.dask))

# %%
# Every operation adds tasks — one per chunk and operation — and still reads nothing. Exposure
# normalisation divides each frame by its own exposure time:

normalised = c171.normalize_exposure()
print(normalised.data)
print("tasks:", len(normalised.data.dask), " layers:", list(normalised.data.dask.layers))

# %%
# Rebinning
# ---------
# `~sunpy_timelag.TimelagCube.rebin` is ndcube's `~ndcube.NDCube.rebin`: integer bin factors per
# array axis ``(time, y, x)``, each bin combined by ``operation`` (the mean by default). The
# result is a TimelagCube whose coordinates are those of the bin centres and whose frames keep
# their times, headers and exposure times — 4 x 4 pixels here, and 2 frames in time.

rebinned = normalised.rebin((2, 4, 4))
print(rebinned.data)
print("tasks:", len(rebinned.data.dask))
print(rebinned.time[:3].isot)
print(rebinned.exposure_time[:3])

# %%
# The centre of the first rebinned pixel is the mean of the centres of the 4 x 4 pixels it
# combines, and its time the mean of the two frames' times:

world = rebinned.wcs.pixel_to_world(0, 0, 0)
print(world[0])
print(world[1].isot, "=", (c171.time[0] + (c171.time[1] - c171.time[0]) / 2).isot)
print(normalised.wcs.pixel_to_world(1.5, 1.5, 0)[0])

# %%
# Computing: a progress bar with the threaded scheduler
# -----------------------------------------------------
# ``compute()`` runs the graph: with the default (threaded) scheduler the files are read and
# binned in parallel threads. `dask.diagnostics.ProgressBar` shows the progress of local
# schedulers.

with ProgressBar(dt=1.0):
    binned = rebinned.data.compute()
print(type(binned), binned.shape, binned.dtype)

# %%
# The frames before and after rebinning, with their coordinates:

before = normalised[150:151].to_maps()[0]
after = rebinned[75:76].to_maps()[0]
fig = plt.figure(figsize=(10, 4.3))
for i, (frame, title) in enumerate([(before, "171 Å, 2.4\" pixels"), (after, "rebinned 4 x 4, 2 frames")]):
    ax = fig.add_subplot(1, 2, i + 1, projection=frame)
    frame.plot(axes=ax, title=title, vmin=0, vmax=float(np.percentile(binned, 99.5)))
    ax.coords.grid(color="white", alpha=0.4, ls=":")
fig.tight_layout()
plt.show()

# %%
# A dask.distributed cluster
# --------------------------
# The same graph runs on a `dask.distributed` cluster: a `~distributed.LocalCluster` on one
# machine, or a cluster of many machines (dask-jobqueue, dask-kubernetes, ...), which a
# `~distributed.Client` makes the default scheduler. A cube pickles cheaply (its file readers are
# small objects holding the file names), so the workers read the files themselves.
#
# Two in-process workers keep this example light; ``processes=True`` (the default) gives each
# worker its own process — the package's tests check that results are the same with both.

cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None)
client = Client(cluster)
print(client)

# %%
# A time-lag map on the cluster: the cubes are rebinned 2 x 2 in space, and the cross-correlation
# of every pixel runs on the workers. `distributed.get_task_stream` records which worker ran
# what.

a = c335.normalize_exposure().rebin((1, 2, 2))
b = c171.normalize_exposure().rebin((1, 2, 2))
start = time.perf_counter()
with get_task_stream(client) as stream:
    lag_map = a.timelag_map(b, lag_bounds=[-1, 1] * u.h)
print(f"{time.perf_counter() - start:.1f} s;", len(stream.data), "tasks on workers",
      sorted({task["worker"] for task in stream.data}))

# %%
# The same map with the threaded scheduler, for comparison: the schedulers give identical
# results.

with dask.config.set(scheduler="threads"):
    threaded = a.timelag_map(b, lag_bounds=[-1, 1] * u.h)
print("identical:", np.array_equal(lag_map.data, threaded.data, equal_nan=True))

client.close()
cluster.close()

# %%
# The map, with its coordinates:

fig = plt.figure(figsize=(5.5, 4.5))
ax = fig.add_subplot(projection=lag_map)
image = lag_map.plot(axes=ax, title="335-171 Å time lag, 2 x 2 binned")
fig.colorbar(image, ax=ax, label="lag [s]")
plt.show()

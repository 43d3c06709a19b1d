"""
==============================
All channel pairs at once
==============================

The six coronal EUV channels of AIA give fifteen channel pairs. `~sunpy_timelag.timelag_maps`
computes the time-lag and peak cross-correlation maps of all of them in one pass over the data:
each channel is read, put on the common time grid and Fourier transformed once, and reused by
every pair it belongs to.
"""
# sphinx_gallery_thumbnail_number = 1

import tempfile

import astropy.units as u
import matplotlib.pyplot as plt
import numpy as np
import sunpy.map

from sunpy_timelag import HOT_TO_COOL, TimelagCube, timelag_maps
from sunpy_timelag.data import make_synthetic_observation

# %%
# Six channels of a synthetic observation (see the first example), as exposure-normalised
# cut-outs of the loops. A 24 s cadence (AIA's is 12 s) halves the number of files to write and
# read in this example; the sub-cadence refinement of the lags makes up for it.

directory = tempfile.mkdtemp(prefix="sunpy-timelag-example-")
observation = make_synthetic_observation(directory, shape=(48, 48), duration=2 * u.h, cadence=24 * u.s)
cubes = [
    TimelagCube.from_files(f"{directory}/{channel}/*.fits")
    .normalize_exposure()
    .submap(observation.bottom_left, top_right=observation.top_right)
    .persist()  # read the files once: two analyses follow
    for channel in observation.channels
]
# the header of a full-field frame, to put the true lags in a map below
full_header = TimelagCube.from_files(observation.files[171][:3]).headers[0]
print([cube.channel for cube in cubes])

# %%
# Every pair, hot to cool
# -----------------------
# Without ``pairs``, `~sunpy_timelag.timelag_maps` computes every pair of the channels given, each
# ordered from the hotter to the cooler channel as in the literature
# (`~sunpy_timelag.HOT_TO_COOL`), so that positive lags are cooling plasma whatever order
# the cubes come in. The result is a dict from ``(A, B)`` to a
# `~sunpy_timelag.PairMaps` of two maps.

print(HOT_TO_COOL)
results = timelag_maps(cubes, lag_bounds=[-1, 1] * u.h)
print(list(results))
print(results[335, 171].timelag.meta["content"], results[335, 171].correlation.meta["content"])

# %%
# A few chosen pairs are given as tuples or strings; the second channel of each pair is the one
# whose lag is counted from the first.

some = timelag_maps(cubes, pairs=["335-171", (211, 193)], lag_bounds=[-1, 1] * u.h)
print(list(some))

# %%
# The lag maps as a grid
# ----------------------
# Row A, column B: the lag of channel B behind channel A. The lags grow with the distance between
# the two channels' temperatures, as the loops cool through them one after the other.

channels = [c for c in HOT_TO_COOL if c in observation.channels]
n = len(channels) - 1
fig = plt.figure(figsize=(12, 7.5))
for (a, b), maps in results.items():
    row, column = channels.index(a), channels.index(b) - 1
    ax = fig.add_subplot(n, n, row * n + column + 1, projection=maps.timelag)
    image = maps.timelag.plot(axes=ax, title=f"{a}-{b} Å")
    image.set_clim(-2000, 2000)
    for coord in ax.coords:
        coord.set_ticklabel_visible(False)
        coord.set_axislabel("")
fig.subplots_adjust(left=0.02, right=0.98, bottom=0.03, top=0.95, wspace=0.08, hspace=0.3)
colorbar_axes = fig.add_axes([0.06, 0.22, 0.4, 0.025])
fig.colorbar(image, cax=colorbar_axes, orientation="horizontal", label="time lag of B behind A [s]")
fig.text(0.06, 0.32, "row: channel A\ncolumn: channel B", fontsize=12)
plt.show()

# %%
# The peak correlations
# ---------------------
# The correlation says how much to trust a lag: the loops correlate well between all channels,
# the diffuse background between them much less.

fig = plt.figure(figsize=(13, 5.5))
for i, ((a, b), maps) in enumerate(results.items()):
    ax = fig.add_subplot(3, 5, i + 1, projection=maps.correlation)
    image = maps.correlation.plot(axes=ax, title=f"{a}-{b} Å")
    for coord in ax.coords:
        coord.set_ticklabel_visible(False)
        coord.set_axislabel("")
fig.subplots_adjust(left=0.02, right=0.88, bottom=0.03, top=0.93, wspace=0.08, hspace=0.3)
fig.colorbar(image, cax=fig.add_axes([0.9, 0.15, 0.015, 0.7]), label="peak cross-correlation")
plt.show()

# %%
# Against the truth
# -----------------
# The median lag over the loop pixels of each pair, measured and true: the pairs with the largest
# lags are those between the hottest and the coolest channels. The true lags, known on the full
# field, are put in a map and cut out as the cubes were.

rows = []
for (a, b), maps in results.items():
    truth = sunpy.map.Map(observation.true_timelag(a, b), full_header)
    truth = truth.submap(observation.bottom_left, top_right=observation.top_right).data
    loops = np.isfinite(truth)
    rows.append((f"{a}-{b}", np.median(truth[loops]), np.nanmedian(maps.timelag.data[loops])))

labels, true_lags, measured_lags = zip(*rows)
fig, ax = plt.subplots(figsize=(10, 3.8))
positions = np.arange(len(labels))
ax.bar(positions - 0.2, true_lags, 0.4, label="true", color="0.6")
ax.bar(positions + 0.2, measured_lags, 0.4, label="measured", color="C3")
ax.set_xticks(positions, labels, rotation=45)
ax.set_ylabel("median lag over the loops [s]")
ax.legend()
fig.tight_layout()
plt.show()

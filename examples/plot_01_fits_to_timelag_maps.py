"""
=====================================
From FITS files to time-lag maps
=====================================

The whole analysis of Viall & Klimchuk (2012), from one FITS file per frame to time-lag and
peak cross-correlation maps with coordinates, on a synthetic AIA observation whose true time
lags are known in every pixel.
"""
# sphinx_gallery_thumbnail_number = 2

import tempfile

import astropy.units as u
import matplotlib.pyplot as plt
import numpy as np
import sunpy.map

from sunpy_timelag import TimelagCube
from sunpy_timelag.data import make_synthetic_observation

# %%
# A synthetic observation
# -----------------------
# `~sunpy_timelag.data.make_synthetic_observation` writes an AIA-like observation of an active
# region: one FITS file per frame, level-1 headers (``T_OBS``, ``EXPTIME``, the WCS), each channel
# at its own place in the 12 s AIA cycle, exposure times that change from frame to frame, a slight
# pointing jitter and photon noise. Coronal loops are heated and cool through the channels from
# hot (94 Å) to cool (131 Å), so every loop pixel has a known, positive time lag for each
# hot-to-cool pair — and the lags are not multiples of the cadence.
#
# Two hours at 12 s cadence on a small 48 x 48 pixel field keep this example quick; real data
# work the same way.

directory = tempfile.mkdtemp(prefix="sunpy-timelag-example-")
observation = make_synthetic_observation(directory, channels=(94, 335, 211, 171), shape=(48, 48),
                                         duration=2 * u.h, cadence=12 * u.s)
print(observation)
print(observation.files[171][:2])

# %%
# Lazy cubes from the files
# -------------------------
# `~sunpy_timelag.TimelagCube.from_files` reads only the headers (in parallel), sorts the frames
# by observation time and builds a Dask array with one chunk per file: no pixel is read yet.

cubes = {channel: TimelagCube.from_files(f"{directory}/{channel}/*.fits") for channel in observation.channels}
c335 = cubes[335]
print(c335)
print(c335.data)

# %%
# Each cube knows its channel, its frames' times and exposure times, and has a 3-D WCS:
# pixel ``(x, y, t)`` to a helioprojective coordinate and a time.

print(c335.wavelength, c335.channel)
print(c335.time[:3].isot)
print(c335.exposure_time[:3])
print(c335.wcs.pixel_to_world(0, 0, 10))

# %%
# The channels are not observed at the same instants: the 335 Å frames are taken about two
# seconds after the 171 Å ones. The analysis uses these absolute times (see below).

print((cubes[335].time[0] - cubes[171].time[0]).to(u.s))

# %%
# Preparation: exposure normalisation and an active-region cut-out
# ----------------------------------------------------------------
# `~sunpy_timelag.TimelagCube.normalize_exposure` divides each frame by its own exposure time
# (DN to DN/s), and `~sunpy_timelag.TimelagCube.submap` crops every frame as
# `sunpy.map.GenericMap.submap` crops a map. Both stay lazy.

bottom_left, top_right = observation.bottom_left, observation.top_right
regions = {channel: cube.normalize_exposure().submap(bottom_left, top_right=top_right)
           for channel, cube in cubes.items()}
print(regions[335].unit, regions[335].data.shape)

# %%
# Several analyses will read these cut-outs: `~sunpy_timelag.TimelagCube.persist` reads the files
# and computes the preparation once, keeping the (small) result in memory.

regions = {channel: region.persist() for channel, region in regions.items()}

# %%
# The time average of the cut-out is an ordinary sunpy map, with its coordinates:

average = regions[171].average()
fig = plt.figure(figsize=(5, 4.5))
ax = fig.add_subplot(projection=average)
average.plot(axes=ax)
ax.set_title("171 Å, time average")
fig.colorbar(ax.images[0], ax=ax, label=str(average.unit))
plt.show()

# %%
# Time-lag and correlation maps
# -----------------------------
# For a pair of channels (A, B), `~sunpy_timelag.TimelagCube.timelag_map` returns, in every
# pixel, the lag that maximises the cross-correlation of the two light curves, and
# `~sunpy_timelag.TimelagCube.correlation_map` the maximum itself. A positive lag means that B
# peaks after A: with the hotter channel first, positive lags are cooling plasma. Both maps are
# `~sunpy.map.GenericMap` objects on the cut-out's pixels; the lag map is in seconds.
#
# The two channels are first interpolated (linearly, lazily) onto one evenly spaced grid of
# absolute times, so the few seconds between their exposures do not bias the lags; the lag of the
# correlation peak is then refined below the cadence.

pairs = [(335, 171), (335, 211), (94, 335)]
lag_bounds = [-1, 1] * u.h
results = {}
for a, b in pairs:
    timelag = regions[a].timelag_map(regions[b], lag_bounds=lag_bounds)
    correlation = regions[a].correlation_map(regions[b], lag_bounds=lag_bounds)
    results[a, b] = timelag, correlation

timelag, correlation = results[335, 171]
print(timelag.unit, timelag.meta["content"], timelag.meta["cadence"])
print(timelag.bottom_left_coord)

# %%
# The maps carry plot settings that suit them: a diverging colormap centred on zero lag (over the
# lag bounds, narrowed here to ±1600 s), and correlations from 0 to 1. The loops stand out with
# positive lags and high correlations; the background, whose light curves are noise, has random
# lags and low correlations.

fig = plt.figure(figsize=(11, 9.5))
for row, (pair, (timelag, correlation)) in enumerate(results.items()):
    for column, result in enumerate((timelag, correlation)):
        ax = fig.add_subplot(3, 2, 2 * row + column + 1, projection=result)
        image = result.plot(axes=ax, title=f"{pair[0]}-{pair[1]} Å {'time lag' if column == 0 else 'peak correlation'}")
        if column == 0:
            image.set_clim(-1600, 1600)
        fig.colorbar(image, ax=ax, label="lag [s]" if column == 0 else "correlation")
        ax.coords[0].set_axislabel("Helioprojective longitude" if row == 2 else " ")
        ax.coords[1].set_axislabel("Helioprojective latitude" if column == 0 else " ")
fig.tight_layout()
plt.show()

# %%
# Against the truth
# -----------------
# The synthetic observation knows the lag of every pair in every loop pixel
# (`~sunpy_timelag.data.SyntheticObservation.true_timelag`, on the full field). Putting it in a map
# with the header of the first 335 Å frame and cutting it out as the cubes were gives it on the
# same pixels as the result maps.

fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), sharey=True)
for ax, (a, b) in zip(axes, pairs):
    truth = sunpy.map.Map(observation.true_timelag(a, b), cubes[335].headers[0])
    truth = truth.submap(bottom_left, top_right=top_right)
    measured = results[a, b][0].data
    assert truth.data.shape == measured.shape
    loops = np.isfinite(truth.data)
    error = measured[loops] - truth.data[loops]
    ax.hist(error, bins=np.linspace(-30, 30, 61), color="C0")
    ax.axvspan(-6, 6, color="0.9", zorder=0, label="± half a cadence")
    ax.set_title(f"{a}-{b} Å: median |error| {np.nanmedian(np.abs(error)):.1f} s")
    ax.set_xlabel("measured - true lag [s]")
    print(f"{a}-{b}: true lags {np.nanmin(truth.data):.0f} to {np.nanmax(truth.data):.0f} s, "
          f"median |error| {np.nanmedian(np.abs(error)):.2f} s, "
          f"{np.mean(np.abs(error) <= 12):.0%} within one 12 s cadence")
axes[0].set_ylabel("loop pixels")
axes[0].legend(loc="upper left")
fig.tight_layout()
plt.show()

# %%
# The error against the true lag, pixel by pixel: without the sub-cadence refinement
# (``refine=False``) the lags are multiples of the 12 s cadence, and the error saw-tooths
# between -6 and +6 s as the true lag goes from one multiple to the next; the refined lags do
# not.

a, b = 335, 171
truth = sunpy.map.Map(observation.true_timelag(a, b), cubes[335].headers[0]).submap(bottom_left,
                                                                                   top_right=top_right)
quantised = regions[a].timelag_map(regions[b], lag_bounds=lag_bounds, refine=False)
loops = np.isfinite(truth.data)
fig, ax = plt.subplots(figsize=(8, 4))
ax.plot(truth.data[loops], quantised.data[loops] - truth.data[loops], ".", ms=3, color="0.6", label="refine=False")
ax.plot(truth.data[loops], results[a, b][0].data[loops] - truth.data[loops], ".", ms=3, color="C3",
        label="refined (default)")
ax.axhline(0, color="k", lw=0.8)
ax.set_ylim(-15, 15)
ax.set_xlabel("true lag [s]")
ax.set_ylabel("measured - true lag [s]")
ax.set_title(f"{a}-{b} Å, loop pixels")
ax.legend(loc="lower right")
plt.show()

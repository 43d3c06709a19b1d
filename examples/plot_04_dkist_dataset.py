"""
=====================================
Composition with dkist and NDCube
=====================================

Any 3-D ``(time, y, x)`` `~ndcube.NDCube` with celestial coordinates can become a
`~sunpy_timelag.TimelagCube` with `~sunpy_timelag.TimelagCube.from_ndcube` — a
`dkist.Dataset` included. Here the small SOHO/EIT 195 Å dataset that ships with the ``dkist``
package (an ASDF file describing eleven FITS files, with a gWCS) is loaded with
`dkist.load_dataset`, turned into a TimelagCube, cropped, rebinned and averaged.
"""
# sphinx_gallery_thumbnail_number = 1

import os

import astropy.units as u
import dkist
import matplotlib.pyplot as plt
from astropy.coordinates import SkyCoord
from dkist.data.test import rootdir
from ndcube import NDCube

from sunpy_timelag import TimelagCube

# %%
# The dkist dataset
# -----------------
# A `dkist.Dataset` is an NDCube over lazy Dask data, one chunk per FITS file, with a gWCS whose
# time axis tabulates the frames' times, and a table of the frames' headers in ``meta``.

dataset = dkist.load_dataset(os.path.join(rootdir, "EIT"))
print(dataset)
print(dataset.headers["DATE-OBS", "EXPTIME", "WAVELNTH"][:3])

# %%
# From the dataset to a TimelagCube
# ---------------------------------
# `~sunpy_timelag.TimelagCube.from_ndcube` takes the frames' times from the WCS and the channel
# (``WAVELNTH``) and exposure times (``EXPTIME``) from the per-frame headers. The data stay lazy,
# one chunk per file.

cube = TimelagCube.from_ndcube(dataset)
print(cube.wavelength, cube.unit, cube.data)
print(cube.exposure_time)

# %%
# The world coordinates are those of the dataset; the celestial axes are now a FITS (TAN) WCS
# fitted to the dataset's gWCS, so frames become ordinary sunpy maps.

print(cube.wcs.pixel_to_world(64, 64, 5))
print(dataset.wcs.pixel_to_world(64, 64, 5))

# %%
# The observation is irregular: hourly frames with two missing. The cube's time axis tabulates
# the actual times, so no frame is misplaced.

print((cube.time[1:] - cube.time[:-1]).to(u.min).round(1))

# %%
# Crop and rebin
# --------------
# Cropping in world coordinates with ndcube's `~ndcube.NDCube.crop` (``None`` leaves the time
# unconstrained) or with `~sunpy_timelag.TimelagCube.submap`, as for a map, gives a TimelagCube;
# `~sunpy_timelag.TimelagCube.rebin` bins 2 x 2 pixels.

frame = cube.wcs.pixel_to_world(0, 0, 0)[0].frame
bottom_left = SkyCoord(-120 * u.arcsec, -140 * u.arcsec, frame=frame)
top_right = SkyCoord(110 * u.arcsec, 90 * u.arcsec, frame=frame)
cropped = cube.crop((bottom_left, None), (top_right, None))
same = cube.submap(bottom_left, top_right=top_right)
print(type(cropped).__name__, cropped.data.shape, same.data.shape)

region = cropped[:, : cropped.data.shape[1] // 2 * 2, : cropped.data.shape[2] // 2 * 2].rebin((1, 2, 2))
print(region.data.shape, region.celestial_wcs.wcs.cdelt * 3600, "arcsec")

# %%
# A frame and the time average, with their coordinates
# ----------------------------------------------------
# A frame (`~sunpy_timelag.TimelagCube.to_maps`) and the time average
# (`~sunpy_timelag.TimelagCube.average`) are sunpy maps of the EIT instrument, with the
# dataset's coordinates; the full field of the first frame shows where the region lies.

full = cube[0:1].to_maps()[0]
frame_map = region[5:6].to_maps()[0]
average = region.average()
print(average.date, average.meta["date-end"], average.exposure_time)

fig = plt.figure(figsize=(14, 4.6))
ax = fig.add_subplot(1, 3, 1, projection=full)
full.plot(axes=ax, title=f"EIT 195 Å {full.date.isot[:16]}", clip_interval=(1, 99.9) * u.percent)
full.draw_quadrangle(bottom_left, top_right=top_right, axes=ax, edgecolor="cyan")
for i, (m, title) in enumerate([(frame_map, f"rebinned frame {frame_map.date.isot[:16]}"),
                                (average, "rebinned, time average")]):
    ax = fig.add_subplot(1, 3, i + 2, projection=m)
    m.plot(axes=ax, title=title, clip_interval=(1, 99.9) * u.percent)
    ax.coords.grid(color="white", alpha=0.4, ls=":")
fig.tight_layout()
plt.show()

# %%
# The mean brightness of the region against the frames' times:

light_curve = region.normalize_exposure().data.mean(axis=(1, 2)).compute()
fig, ax = plt.subplots(figsize=(7, 3))
ax.plot(region.time.datetime, light_curve, "o-")
ax.set_xlabel("time (UTC)")
ax.set_ylabel(f"mean [{region.unit / u.s}]")
fig.autofmt_xdate()
plt.show()

# %%
# What an NDCube needs
# --------------------
# A TimelagCube needs, besides a ``(time, y, x)`` WCS, the channel and the exposure time of each
# frame. A plain NDCube without metadata gets a clear error naming the keyword argument to pass:

plain = NDCube(dataset.data, wcs=dataset.wcs)
try:
    TimelagCube.from_ndcube(plain)
except ValueError as error:
    print(error)

# %%
# and the keyword arguments ``wavelength=`` and ``exposure_time=`` (one value, or one per frame)
# supply what the metadata lack:

plain_cube = TimelagCube.from_ndcube(plain, wavelength=195 * u.angstrom, exposure_time=12.6 * u.s)
print(plain_cube.channel, plain_cube.exposure_time[:3], plain_cube.time[:2].isot)

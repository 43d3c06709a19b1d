"""
==================================
Registration to level 1.5
==================================

`sunpy_timelag.aia.register` takes an AIA level-1 map to level 1.5 as
`aiapy.calibrate.register` does — rotated to solar north, scaled to 0.6" pixels (or the nearest
multiple for a binned image), the Sun's centre at the frame's centre — with the same numbers,
faster; `~sunpy_timelag.prep.PrepMixin.register` does it lazily, frame by frame, on a cube.
"""
# sphinx_gallery_thumbnail_number = 1

import tempfile
import time

import astropy.units as u
import matplotlib.pyplot as plt
import numpy as np
import sunpy.data.test
import sunpy.map
from aiapy.calibrate import register as aiapy_register
from astropy.coordinates import SkyCoord
from astropy.time import Time
from matplotlib.colors import Normalize

from sunpy_timelag import TimelagCube
from sunpy_timelag.aia import register
from sunpy_timelag.aia.register import ROTATION_METHOD

# %%
# A level-1 map
# -------------
# The AIA 171 Å level-1 image that ships with sunpy: a full-disk image binned to 128 x 128
# pixels of 19", with its roll angle and pointing in the header.

aia = sunpy.map.Map(sunpy.data.test.get_test_filepath("aia_171_level1.fits"))
print(aia.processing_level, aia.dimensions, aia.scale, aia.meta["crota2"], aia.reference_pixel)

# %%
# Register it, and compare with aiapy
# -----------------------------------
# The result is a map of the same class and size, with aiapy's header updates (``CRPIX``,
# ``CDELT``, ``PCi_j``, ``R_SUN``, ``LVL_NUM = 1.5``, ...). The data agree with aiapy's (scipy,
# order-3 spline) to rounding.

level15 = register(aia)
reference = aiapy_register(aia)
print(level15.processing_level, level15.scale, level15.reference_pixel, level15.rotation_matrix.round(12))
print("largest difference:", np.nanmax(np.abs(level15.data - reference.data)) / np.nanmax(reference.data),
      "of the image maximum")
for key in ("crpix1", "crpix2", "cdelt1", "cdelt2", "pc1_2", "r_sun", "lvl_num"):
    assert np.isclose(level15.meta[key], reference.meta[key], rtol=1e-12, atol=1e-12), key

fig = plt.figure(figsize=(15, 4.8))
for i, (m, title) in enumerate([(aia, "level 1"), (level15, "level 1.5, sunpy_timelag")]):
    ax = fig.add_subplot(1, 3, i + 1, projection=m)
    m.plot(axes=ax, title=title, clip_interval=(1, 99.9) * u.percent)
    m.draw_limb(axes=ax, color="w", lw=0.8)
ax = fig.add_subplot(1, 3, 3, projection=level15)
difference = sunpy.map.GenericMap((level15.data - reference.data) / np.nanmax(reference.data), level15.meta)
image = difference.plot(axes=ax, cmap="RdBu_r", norm=Normalize(-1e-15, 1e-15), title="(sunpy_timelag - aiapy) / max")
fig.colorbar(image, ax=ax, shrink=0.8)
fig.tight_layout()
plt.show()

# %%
# Speed
# -----
# On a larger frame — the same image resampled to 2048 x 2048 pixels of 1.2" (AIA's 2 x 2 binning)
# and given a small roll — the spline prefilter and interpolation run in compiled kernels over
# blocks of rows in threads (with numba installed; `scipy.ndimage` otherwise), where aiapy uses
# one thread. Full-frame figures are on the :doc:`/performance` page.

full = aia.resample([2048, 2048] * u.pix)
full.meta["crota2"] = 0.1
start = time.perf_counter()
ours = register(full)
our_seconds = time.perf_counter() - start
start = time.perf_counter()
theirs = aiapy_register(full)
aiapy_seconds = time.perf_counter() - start
print(f"sunpy_timelag {our_seconds:.2f} s, aiapy {aiapy_seconds:.2f} s ({aiapy_seconds / our_seconds:.1f}x); "
      f"largest difference {np.nanmax(np.abs(ours.data - theirs.data)) / np.nanmax(theirs.data):.1e}")

# %%
# Importing `sunpy_timelag.aia` also registers the kernel with sunpy as the rotation method
# ``"sunpy_timelag"``, so `sunpy.map.GenericMap.rotate` and aiapy's own ``register`` can use it:

print(ROTATION_METHOD)
rotated = aia.rotate(method=ROTATION_METHOD, order=3)
print(rotated.dimensions, rotated.rotation_matrix.round(12))

# %%
# The pipeline on a cube
# ----------------------
# A cube of level-1 frames is prepared lazily, frame by frame, in the physically right order:
# deconvolve the level-1 frames (`~sunpy_timelag.prep.PrepMixin.deconvolve`), register them, divide
# by the exposure times, and only then crop. `~sunpy_timelag.prep.PrepMixin.prepare` chains the first
# three. Each frame is registered with its own pointing onto the level-1.5 grid of the first, so
# all share one WCS.
#
# Here a short series is made of the test image, its pointing jittered by a few tenths of a
# pixel from frame to frame, as a spacecraft drifts (deconvolution applies to full-resolution
# frames and is left out of this binned series).

rng = np.random.default_rng(0)
frames = []
for i in range(6):
    header = aia.meta.copy()
    obstime = Time(aia.date) + i * 12 * u.s
    header.update({"date-obs": obstime.isot, "t_obs": (obstime + 1 * u.s).isot,
                   "crpix1": aia.meta["crpix1"] + rng.normal(0, 0.3), "crpix2": aia.meta["crpix2"] + rng.normal(0, 0.3)})
    frames.append(sunpy.map.Map(aia.data * (1 + 0.05 * i), header))
cube = TimelagCube.from_maps(frames)
prepared = cube.prepare()  # register, then normalise: lazy
print(prepared.data)
print(prepared.unit, prepared.headers[0]["lvl_num"], prepared.celestial_wcs.wcs.crpix)

# %%
# Each registered frame is the frame `~sunpy_timelag.aia.register` gives:

frame3 = prepared[3:4].to_maps()[0]
single = register(frames[3])
print("frame 3 against register():",
      np.nanmax(np.abs(np.asarray(frame3.data) * frames[3].exposure_time.to_value(u.s) - single.data))
      / np.nanmax(single.data))

# %%
# Then crop, in the registered frames' coordinates (the helioprojective frame of the cube):

cube_frame = prepared.wcs.pixel_to_world(0, 0, 0)[0].frame
region = prepared.submap(SkyCoord(-800 * u.arcsec, -600 * u.arcsec, frame=cube_frame),
                         top_right=SkyCoord(200 * u.arcsec, 400 * u.arcsec, frame=cube_frame))
print(region.data.shape, region.wcs.pixel_to_world(0, 0, 0)[0])

# %%
# Preparing once
# --------------
# The preparation is the expensive part of an analysis of real data. `~sunpy_timelag.prep.PrepMixin.to_zarr`
# computes a prepared cube frame by frame into a Zarr store (atomically: an interrupted write
# leaves no store), and `~sunpy_timelag.prep.PrepMixin.from_zarr` gives it back, lazily, with its
# coordinates and metadata.

store = prepared.to_zarr(tempfile.mkdtemp() + "/prepared_171.zarr")
again = TimelagCube.from_zarr(store)
print(again.data)
print("same data:", np.array_equal(again.data.compute(), prepared.data.compute(), equal_nan=True),
      " same times:", bool((again.time == prepared.time).all()),
      " same coordinates:", again.wcs.pixel_to_world(10, 20, 2)[0].separation(prepared.wcs.pixel_to_world(10, 20, 2)[0]))

fig = plt.figure(figsize=(5.8, 5))
average = again.average()
ax = fig.add_subplot(projection=average)
average.plot(axes=ax, title="prepared, time average", clip_interval=(1, 99.9) * u.percent)
average.draw_limb(axes=ax, color="w", lw=0.8)
plt.show()

"""
======================================
AIA PSF and deconvolution
======================================

The point spread function (PSF) of an AIA channel, as `aiapy.psf.calculate_psf` defines it
(``aiapy.psf.psf`` before aiapy 0.11), computed in about a second, and Richardson-Lucy
deconvolution with it, as `aiapy.psf.deconvolve` does it — faster, in single precision by
default, on NumPy or CuPy arrays.
"""
# sphinx_gallery_thumbnail_number = 1

import importlib.util
import time

import aiapy
import aiapy.psf
import astropy.units as u
import matplotlib.pyplot as plt
import numpy as np
import sunpy.data.test
import sunpy.map
from matplotlib.colors import LogNorm

from sunpy_timelag.aia import deconvolve, psf
from sunpy_timelag.aia.deconvolve import fit_psf

# %%
# The PSF of the 171 Å channel
# ----------------------------
# `sunpy_timelag.aia.psf` evaluates aiapy's model (Grigis et al. 2012): diffraction spikes from the
# meshes of the entrance filter and of the focal-plane filter around a Gaussian core, combined by
# a convolution. Each spike is a product of a function of x and a function of y, so each pattern
# is a product of two thin matrices instead of hundreds of full-frame exponentials. The result,
# full frame (4096 x 4096 pixels), is cached per channel and options.

start = time.perf_counter()
psf171 = psf(171 * u.angstrom)
print(f"{time.perf_counter() - start:.2f} s", psf171.shape, psf171.dtype,
      f"sum {psf171.sum():.6f}, peak {psf171.max():.3f} at {np.unravel_index(psf171.argmax(), psf171.shape)}")

# %%
# On a logarithmic scale: the core and the first diffraction spikes (left), and the whole frame,
# where each displayed pixel is the largest of 8 x 8 (right). Most of the light is in the core, but
# the spikes scatter a few per cent of it over the whole detector.

centre = psf171.shape[0] // 2
core = psf171[centre - 128 : centre + 128, centre - 128 : centre + 128]
whole = psf171.reshape(512, 8, 512, 8).max(axis=(1, 3))
fig, axes = plt.subplots(1, 2, figsize=(11, 5))
for ax, image, extent, title in [
    (axes[0], core, [-128, 128, -128, 128], "central 256 x 256 pixels"),
    (axes[1], whole, [-2048, 2048, -2048, 2048], "full frame (max of 8 x 8 pixels)"),
]:
    shown = ax.imshow(image, origin="lower", extent=extent, norm=LogNorm(vmin=1e-12, vmax=psf171.max()),
                      cmap="inferno")
    ax.set_title(f"AIA 171 Å PSF, {title}")
    ax.set_xlabel("x [pixel]")
    ax.set_ylabel("y [pixel]")
fig.colorbar(shown, ax=axes, shrink=0.8, label="PSF")
plt.show()

# %%
# The same numbers as aiapy
# -------------------------
# aiapy evaluates every spike on the full frame; with all its diffraction orders that takes many
# minutes on a laptop with NumPy, and tens of seconds with JAX, which aiapy 0.11 and later use when
# it is installed (see :doc:`/performance`). With a single diffraction order (six spikes) it is
# quick enough to compare here. aiapy 0.11 also renamed ``psf`` to ``calculate_psf`` and dropped
# the ``use_gpu`` option (earlier releases need ``use_gpu=False`` to stay on the CPU):

if hasattr(aiapy.psf, "calculate_psf"):
    aiapy_psf, on_cpu = aiapy.psf.calculate_psf, {}
    engine = "JAX" if importlib.util.find_spec("jax") else "NumPy"
else:
    aiapy_psf, on_cpu = aiapy.psf.psf, {"use_gpu": False}
    engine = "NumPy"
print(f"aiapy {aiapy.__version__}, computing with {engine}")

orders = [1]
start = time.perf_counter()
reference = aiapy_psf(171 * u.angstrom, diffraction_orders=orders, **on_cpu)
aiapy_seconds = time.perf_counter() - start
start = time.perf_counter()
ours = psf(171 * u.angstrom, diffraction_orders=orders)
our_seconds = time.perf_counter() - start
print(f"aiapy {aiapy_seconds:.2f} s, sunpy_timelag {our_seconds:.2f} s ({aiapy_seconds / our_seconds:.0f}x); "
      f"largest difference {np.abs(ours - reference).max() / reference.max():.1e} of the peak")

# %%
# An AIA image at the PSF's pixel scale
# -------------------------------------
# sunpy's test data include a level-1 AIA 171 Å image, binned to 128 x 128 pixels of 19". The PSF
# is defined on AIA's 0.6" pixels, so the image must be resampled to that scale first: here a
# region across the west limb, 32 x 32 binned pixels that become 1024 x 1024 pixels of 0.6"
# (resampling the whole image to the full 4096 x 4096 frame works the same, only slower).

aia = sunpy.map.Map(sunpy.data.test.get_test_filepath("aia_171_level1.fits"))
print(aia.dimensions, aia.scale)
region = aia.submap([96, 48] * u.pix, top_right=[127, 79] * u.pix)
cutout = region.resample([1024, 1024] * u.pix)
print(cutout.dimensions, cutout.scale)

# %%
# Deconvolving a cut-out
# ----------------------
# For an image smaller than the PSF, `~sunpy_timelag.aia.deconvolve` crops the full-frame PSF
# about its centre to the image's shape and rescales it to its original sum
# (`~sunpy_timelag.aia.Deconvolver` explains it): the light scattered *within* the cut-out is
# restored, not the light scattered in from outside it, and the deconvolution's periodic
# boundaries disturb the edges — deconvolve full frames when that matters. The map's channel
# selects the PSF, and the result is a map with the same metadata.

start = time.perf_counter()
deconvolved = deconvolve(cutout)
print(f"{time.perf_counter() - start:.2f} s", type(deconvolved).__name__, deconvolved.data.dtype,
      deconvolved.data.shape)

# %%
# The deconvolution moves the scattered light back into the bright structures: off the limb, the
# diffuse glow that the PSF spread from the disk drops (the last few tens of pixels at the
# cut-out's edges are boundary effects).

norm = LogNorm(vmin=20, vmax=float(np.percentile(cutout.data, 99.9)))
fig = plt.figure(figsize=(15, 4.8))
for i, (m, title) in enumerate([(cutout, "level 1 (resampled)"), (deconvolved, "deconvolved")]):
    ax = fig.add_subplot(1, 3, i + 1, projection=m)
    m.plot(axes=ax, norm=norm, title=f"AIA 171 Å, {title}")
    ax.axhline(512, color="w", lw=0.6, ls="--")
ax = fig.add_subplot(1, 3, 3)
x = cutout.pixel_to_world(np.arange(1024) * u.pix, 512 * u.pix).Tx
ax.semilogy(x, cutout.data[512], label="level 1")
ax.semilogy(x, deconvolved.data[512], label="deconvolved")
ax.set_xlabel("helioprojective longitude [arcsec]")
ax.set_ylim(5, None)
ax.set_ylabel(f"[{cutout.unit}]")
ax.set_title("along the dashed row")
ax.legend()
fig.tight_layout()
plt.show()

# %%
# Speed and agreement with aiapy
# ------------------------------
# Both on the same cut-out with the same (cropped) PSF and 25 iterations: aiapy in double
# precision, `~sunpy_timelag.aia.deconvolve` in single precision (AIA counts have 14 bits) and,
# for an exact comparison, in double precision. The gain grows with the image size: the figures
# for full frames, and on a GPU, are on the :doc:`/performance` page.

kernel = fit_psf(psf171, cutout.data.shape)
start = time.perf_counter()
reference = aiapy.psf.deconvolve(cutout, psf=kernel, **on_cpu)
aiapy_seconds = time.perf_counter() - start
for dtype in (np.float32, np.float64):
    start = time.perf_counter()
    result = deconvolve(cutout, psf=kernel, dtype=dtype)
    seconds = time.perf_counter() - start
    difference = np.abs(result.data - reference.data).max() / reference.data.max()
    print(f"{np.dtype(dtype).name}: {seconds:.2f} s against aiapy's {aiapy_seconds:.2f} s "
          f"({aiapy_seconds / seconds:.1f}x), largest difference {difference:.1e} of the image maximum")

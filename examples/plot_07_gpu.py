"""
=================================
The same pipeline on a GPU (CuPy)
=================================

The array kernels of ``sunpy_timelag`` — the cross-correlation and the AIA deconvolution — have
one implementation for NumPy and CuPy: given CuPy arrays, or Dask arrays of CuPy chunks, they
run on an NVIDIA GPU and return CuPy arrays. This example runs the time-lag analysis and a
deconvolution on the GPU and compares them with the CPU.

It needs CuPy (``pip install ".[gpu]"``) and a GPU. Where there is none — as when this page was
built, if the output below says so — the GPU cells are shown but skipped.
"""
# sphinx_gallery_thumbnail_number = 1

import tempfile
import time

import astropy.units as u
import matplotlib.pyplot as plt
import numpy as np
import sunpy.data.test
import sunpy.map

from sunpy_timelag import TimelagCube, cupy_available, lags, time_grid
from sunpy_timelag.aia import Deconvolver
from sunpy_timelag.data import make_synthetic_observation

GPU = cupy_available()
if GPU:
    import cupy

    print("GPU:", cupy.cuda.runtime.getDeviceProperties(0)["name"].decode())
else:
    print("CuPy sees no GPU here: the GPU cells below are shown, not run.")

# %%
# Cubes, prepared lazily on the CPU
# ---------------------------------
# Two channels of a synthetic observation (see the first example), exposure-normalised and cut
# out, and the CPU result for reference.

directory = tempfile.mkdtemp(prefix="sunpy-timelag-example-")
observation = make_synthetic_observation(directory, channels=(335, 171), shape=(48, 48), duration=2 * u.h)
ar335, ar171 = (
    TimelagCube.from_files(f"{directory}/{channel}/*.fits")
    .normalize_exposure()
    .submap(observation.bottom_left, top_right=observation.top_right)
    for channel in (335, 171)
)
lag_bounds = [-1, 1] * u.h
start = time.perf_counter()
cpu_map = ar335.timelag_map(ar171, lag_bounds=lag_bounds)
print(f"CPU: {time.perf_counter() - start:.2f} s")

# %%
# The time-lag maps on the GPU
# ----------------------------
# `~sunpy_timelag.TimelagCube.as_cupy` gives the same cubes with CuPy chunks: the files are read
# on the CPU and every step after that — resampling onto the common time grid, centring, FFTs,
# peak search, refinement — runs on the GPU. The map comes back as an ordinary sunpy Map.

grid = time_grid([ar335, ar171])
cadence = (grid[1] - grid[0]).to_value(u.s)
bounds = tuple(lag_bounds.to_value(u.s))
print(f"{grid.size} steps of {cadence:.1f} s")

if GPU:
    gpu335, gpu171 = ar335.as_cupy(), ar171.as_cupy()
    print(gpu335.data)  # a Dask array of CuPy chunks
    start = time.perf_counter()
    gpu_map = gpu335.timelag_map(gpu171, lag_bounds=lag_bounds)
    print(f"GPU: {time.perf_counter() - start:.2f} s")
    gpu_lag = gpu_map.data
    print("largest difference from the CPU map:", np.nanmax(np.abs(gpu_lag - cpu_map.data)), "s")

# %%
# With the data in GPU memory already, the kernel alone:

if GPU:
    a_gpu, b_gpu = (cupy.asarray(cube.interpolate_time(grid).data.compute()) for cube in (ar335, ar171))
    lags.timelag(a_gpu, b_gpu, cadence, lag_bounds=bounds)  # warm-up: CUDA kernels and FFT plans
    cupy.cuda.Device().synchronize()
    start = time.perf_counter()
    result = lags.timelag(a_gpu, b_gpu, cadence, lag_bounds=bounds)
    cupy.cuda.Device().synchronize()
    print(f"{(time.perf_counter() - start) * 1e3:.1f} ms for {a_gpu.shape[1] * a_gpu.shape[2]} pixels")

# %%
# The two maps side by side: the GPU lags in the CPU map's coordinates.

fig = plt.figure(figsize=(10, 4.2))
maps = [("CPU", cpu_map)]
if GPU:
    maps.append(("GPU", gpu_map))
for i, (name, lag_map) in enumerate(maps):
    ax = fig.add_subplot(1, 2, i + 1, projection=lag_map)
    image = lag_map.plot(axes=ax, title=f"335-171 Å time lag, {name}")
    fig.colorbar(image, ax=ax, label="lag [s]")
plt.show()

# %%
# Deconvolution on the GPU
# ------------------------
# A `~sunpy_timelag.aia.Deconvolver` keeps the transformed PSF on the device, per image shape,
# so a sequence of frames pays for it once; the image stays on the device through the 25
# iterations. Here the full-frame AIA image of the fifth example, on the CPU and the GPU.

aia = sunpy.map.Map(sunpy.data.test.get_test_filepath("aia_171_level1.fits"))
deconvolver = Deconvolver(channel=171 * u.angstrom)

if GPU:
    image = aia.resample([4096, 4096] * u.pix).data
    on_device = cupy.asarray(image)
    deconvolver(on_device)  # first call: the PSF's transform, FFT plans
    cupy.cuda.Device().synchronize()
    start = time.perf_counter()
    gpu_result = deconvolver(on_device)
    cupy.cuda.Device().synchronize()
    gpu_seconds = time.perf_counter() - start
    start = time.perf_counter()
    cpu_result = deconvolver(image)
    cpu_seconds = time.perf_counter() - start
    difference = float(np.abs(cupy.asnumpy(gpu_result) - cpu_result).max() / cpu_result.max())
    print(f"4096 x 4096, 25 iterations: GPU {gpu_seconds:.3f} s, CPU {cpu_seconds:.2f} s; "
          f"largest difference {difference:.1e} of the maximum")

"""
Benchmark of `TimelagCube.derotate` against sunpy's ``propagate_with_solar_surface()`` + ``Map.reproject_to``.

Run as ``python benchmarks/bench_derotate.py [--size 4096] [--frames 10] [--cutout 350 450] [--repeat 1]``.

The frames are sunpy's 128 x 128 AIA 171 test image interpolated to ``--size`` pixels (a level-1.5-like
full disk: 0.6 arcsec per pixel at 4096), one every 40 minutes over 6 hours (``--hours``), with the
observer of the test header. The cut-out (``--cutout`` rows and columns, centred on ``--centre``
arcsec at the middle frame's time) is the grid both derotate onto. In the same run, for spline
orders 1 (sunpy's default ``"bilinear"``) and 3 (``"bicubic"``), the script prints seconds per frame:

* sunpy: each frame's ``reproject_to`` of the cut-out's WCS under ``propagate_with_solar_surface()``;
* ours: ``cube.derotate(...)`` (its set-up included) and ``compute``, on one thread (Dask's
  synchronous scheduler) and on Dask's threads;

the speed-ups (sunpy's time / ours), and the largest and median ``|ours - sunpy|`` over the pixels
both give, with the count of pixels that only one of them gives. The machine may be shared: the load
average is printed, and the ratios, measured in the same run, are what to read.
"""
import argparse
import os

import astropy.units as u
import numpy as np
import reproject
import scipy.ndimage
import sunpy
import sunpy.data.test
import sunpy.map
from _timing import best
from astropy.coordinates import SkyCoord
from astropy.time import Time
from sunpy.coordinates import propagate_with_solar_surface

from sunpy_timelag import TimelagCube


def frames(size, n, hours):
    """``n`` full-disk AIA 171 maps of ``size`` pixels, evenly spread over ``hours``."""
    small = sunpy.map.Map(sunpy.data.test.get_test_filepath("aia_171_level1.fits"))
    image = np.clip(scipy.ndimage.zoom(small.data.astype(np.float32), size / small.data.shape[0], order=1), 0, None)
    start = Time(small.meta["t_obs"])
    scale = 0.6 * 4096 / size
    maps = []
    for k, offset in enumerate(np.linspace(0, hours, n)):
        meta = dict(small.meta)
        meta.update(naxis1=size, naxis2=size, cdelt1=scale, cdelt2=scale, crpix1=(size + 1) / 2, crpix2=(size + 1) / 2,
                    crota2=0.0, crval1=0.0, crval2=0.0, lvl_num=1.5, t_obs=(start + offset * u.h).isot,
                    exptime=2.0 + 0.01 * k)
        meta["date-obs"] = (start + offset * u.h - 1 * u.s).isot  # the start of the exposure, as T_OBS moves
        maps.append(sunpy.map.Map(image + k, meta))
    return maps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--size", type=int, default=4096, help="frame side in pixels (default 4096)")
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--hours", type=float, default=6.0, help="time the frames span")
    parser.add_argument("--cutout", type=int, nargs=2, default=(350, 450), metavar=("NY", "NX"))
    parser.add_argument("--centre", type=float, nargs=2, default=(-250.0, 300.0), metavar=("TX", "TY"),
                        help="cut-out centre, arcsec, at the middle frame's time")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    maps = frames(args.size, args.frames, args.hours)
    cube = TimelagCube.from_maps(maps)
    middle = maps[args.frames // 2]
    scale = middle.scale[0].to_value(u.arcsec / u.pix)
    ny, nx = args.cutout
    corner = SkyCoord((args.centre[0] - nx * scale / 2) * u.arcsec, (args.centre[1] - ny * scale / 2) * u.arcsec,
                      frame=middle.coordinate_frame)
    region = {"bottom_left": corner, "width": nx * scale * u.arcsec, "height": ny * scale * u.arcsec}
    print(f"sunpy {sunpy.__version__}, reproject {reproject.__version__}; {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{args.frames} frames of {args.size} x {args.size} over {args.hours} h; cut-out {ny} x {nx} pixels "
          f"centred on ({args.centre[0]:g}, {args.centre[1]:g}) arcsec; best of {args.repeat}")

    for order, algorithm in ((1, "bilinear"), (3, "bicubic")):
        grid = cube.derotate(**region, order=order).celestial_wcs

        def sunpy_run(algorithm=algorithm, grid=grid):
            with propagate_with_solar_surface():
                return np.stack([m.reproject_to(grid, algorithm="interpolation", order=algorithm).data
                                 for m in maps])

        theirs, their_wall, _ = best(sunpy_run, args.repeat)
        print(f"order {order} (sunpy {algorithm!r})")
        print(f"  {'sunpy propagate_with_solar_surface + reproject_to':52s} {their_wall / args.frames:8.4f} s/frame")
        for label, scheduler in (("ours, one thread", "synchronous"), ("ours, Dask threads", "threads")):
            ours, wall, _ = best(lambda order=order, scheduler=scheduler: cube.derotate(**region, order=order)
                                 .data.compute(scheduler=scheduler), args.repeat)
            print(f"  {label:52s} {wall / args.frames:8.4f} s/frame  speed-up {their_wall / wall:6.1f} x")
        both = np.isfinite(ours) & np.isfinite(theirs)
        difference = np.abs(ours - theirs)[both]
        only = [(both != np.isfinite(values)).sum() for values in (ours, theirs)]
        print(f"  |ours - sunpy|: max {difference.max():.2e}, median {np.median(difference):.2e} "
              f"(data up to {np.abs(theirs[both]).max():.2e}); pixels given by one only: {only[0]} ours, "
              f"{only[1]} sunpy's")


if __name__ == "__main__":
    main()

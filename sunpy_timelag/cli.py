"""
The ``sunpy-timelag`` command: ``demo`` on the built-in synthetic observation, ``run`` on real data.

Both write into a results folder (``--out``) that is checked before any computation and held by one
run at a time; every map is written atomically, and ``manifest.json`` (options, inputs, outputs,
versions) is written last, so a folder without it holds an incomplete result set.
"""
import argparse
import contextlib
import hashlib
import json
import platform
import re
import string
import sys
import tempfile
import time
import warnings
from pathlib import Path

import astropy.units as u
import numpy as np
from fsspec.implementations.local import LocalFileSystem

from . import __version__
from .analysis import _parse_pair, timelag_maps
from .cube import TimelagCube
from .exceptions import OutputPathError
from .io.files import resolve_files
from .io.write import lock_folder, write_atomically
from .lags import TimelagWarning
from .plotting import (
    MIN_CORRELATION,
    SIGN_CONVENTION,
    SIGNIFICANCE_LEVEL,
    lag_limit,
    plot_lag_histograms,
    plot_pair_grid,
    reliable_pixels,
)
from .results import result_files

__all__ = ["main"]

#: The file, written last, that marks the maps of a results folder as one complete set.
MANIFEST = "manifest.json"

_DURATION = re.compile(r"^\s*(-?[\d.]+)\s*([a-z]*)\s*$")


def parse_duration(text):
    """
    A duration such as ``"-3h"``, ``"90min"``, ``"20 s"`` (a bare number is seconds).

    Returns
    -------
    `~astropy.units.Quantity`
    """
    match = _DURATION.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. -3h, 90min, 20s)")
    value, unit = match.groups()
    try:
        return (float(value) * u.Unit(unit or "s")).to(u.s)
    except (ValueError, u.UnitConversionError):
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. -3h, 90min, 20s)") from None


def _parse_pairs(text):
    try:
        pairs = [_parse_pair(pair) for pair in text.split(",")]
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    same = next((pair for pair in pairs if pair[0] == pair[1]), None)
    if same is not None:
        raise argparse.ArgumentTypeError(f"{same[0]}-{same[1]} pairs a channel with itself: a time lag needs two")
    return list(dict.fromkeys(pairs))


def _parse_pattern(text):
    """A file pattern whose only brace field is ``{channel}`` (literal braces doubled)."""
    try:
        fields = {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r}: {error} (write a literal brace as {{{{ or }}}})") from None
    other = sorted(fields - {"channel"})
    if other:
        raise argparse.ArgumentTypeError(f"{text!r} has the field {{{other[0]}}}: the only field of a file pattern "
                                         "is {channel}, e.g. 'obs/{channel}/*.fits'")
    if not fields:
        raise argparse.ArgumentTypeError(f"{text!r} has no {{channel}}: e.g. 'obs/{{channel}}/*.fits'")
    return text


def _parse_bin(text):
    try:
        factors = tuple(int(f) for f in text.split(","))
    except ValueError:
        factors = ()
    if len(factors) != 3 or min(factors) < 1:
        raise argparse.ArgumentTypeError(f"--rebin takes three positive integers t,y,x such as 1,2,2; got {text!r}")
    return factors


def _parse_correlation(text):
    try:
        value = float(text)
    except ValueError:
        value = np.nan
    if not -1 <= value <= 1:
        raise argparse.ArgumentTypeError(f"--min-correlation takes a number in [-1, 1], e.g. 0.2; got {text.strip()!r}")
    return value


def _parse_region(text):
    try:
        x0, y0, x1, y1 = (float(value) for value in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--region takes four numbers X0,Y0,X1,Y1 in arcsec, e.g. "
                                         f"-300,100,-100,250; got {text!r}") from None
    if not (x0 < x1 and y0 < y1):
        raise argparse.ArgumentTypeError(f"--region {text!r}: the first corner must be below and left of the second")
    return (x0, y0), (x1, y1)


def _parse_time(text):
    from astropy.time import Time

    try:
        return Time(text.strip(), scale="utc")
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO time: {text!r} (e.g. 2011-02-15T01:00:00)") from None


def _step(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class ResultsFolder:
    """
    The folder a run writes its maps into: checked before any computation, held for the run.

    Entering checks that the folder is one (or can be created), is writable, and holds none of the
    input files, then locks it (`~sunpy_timelag.io.write.lock_folder`): a second run into the same
    folder fails at once, and a lock left by a killed run is taken over. The first `write` removes
    the manifest of an earlier result set; `complete` writes the new one, last.

    Parameters
    ----------
    path : str or os.PathLike
    inputs : list of `fsspec.core.OpenFile`
        The input files: never overwritten, and not in the folder.

    Raises
    ------
    ~sunpy_timelag.exceptions.OutputPathError
        If the folder is a file, cannot be created or written, holds input files, or is in use by
        another run.
    """

    def __init__(self, path, inputs=()):
        self.path = Path(path).expanduser()
        self.inputs = [file.path for file in inputs if isinstance(file.fs, LocalFileSystem)]
        self.outputs = {}
        self._held = contextlib.ExitStack()

    def __enter__(self):
        if self.path.exists() and not self.path.is_dir():
            raise OutputPathError(f"the results folder {self.path} is a file: give a folder as --out")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OutputPathError(f"cannot create the results folder {self.path}: {error.strerror or error}") from error
        folder = self.path.resolve()
        held = next((name for name in self.inputs if Path(name).resolve().parent == folder), None)
        if held is not None:
            raise OutputPathError(f"the results folder {self.path} holds input files ({Path(held).name}): "
                                  "choose another --out")
        earlier = self._held.enter_context(lock_folder(self.path))
        if earlier is not None:
            print(f"sunpy-timelag: a run into {self.path} (process {earlier.get('pid')} on {earlier.get('host')}, "
                  f"since {earlier.get('started')}) did not finish; its maps there are replaced", file=sys.stderr)
        return self

    def __exit__(self, *exception):
        self._held.close()

    def write(self, name, write):
        """Write the output ``name`` atomically with ``write(temporary_path)``; the first one removes the manifest."""
        if not self.outputs:
            (self.path / MANIFEST).unlink(missing_ok=True)  # from here on, the folder holds no complete set
        path = write_atomically(self.path / name, write, self.inputs)
        self.outputs[name] = {"bytes": path.stat().st_size,
                              "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}

    def complete(self, **record):
        """Write the manifest: ``record`` (options, inputs), the outputs and the versions; last."""
        import astropy
        import dask
        import sunpy

        manifest = {
            "complete": True,
            "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "sunpy_timelag": __version__,
            **record,
            "outputs": self.outputs,
            "versions": {"python": platform.python_version(), "numpy": np.__version__,
                         "astropy": astropy.__version__, "sunpy": sunpy.__version__, "dask": dask.__version__},
        }
        write_atomically(self.path / MANIFEST, lambda path: Path(path).write_text(json.dumps(manifest, indent=1)))


def analyse(pattern, pairs, lag_bounds, out, *, register=False, region=None, derotate=False, reference_time=None,
            rebin=None, normalize=True, min_correlation=None, normalization="global", uncertainty=False,
            significance=False, command="run"):
    """
    Build the cubes of the channels in ``pairs``, prepare them, compute their maps and write them.

    The preparation follows the physically right order: register (level 1 to 1.5), derotate onto
    the region at the reference time (or crop to it), normalise the exposures, rebin.

    Parameters
    ----------
    pattern : str
        Path, glob or URL of the files of one channel, with ``{channel}`` in it.
    pairs : list of (int, int)
        Channel pairs ``(A, B)``.
    lag_bounds : `~astropy.units.Quantity`
    out : pathlib.Path
        Results folder (`ResultsFolder`): ``timelag_A_B.fits``, ``correlation_A_B.fits`` (and
        ``uncertainty_A_B.fits``, ``significance_A_B.fits`` when asked for) and a PNG per pair,
        ``timelag_grid.png`` and ``lag_histograms.png``, then ``manifest.json``; result maps of
        earlier runs that this run does not write are removed, so that
        `~sunpy_timelag.TimelagResults.load` reads this run's set.
    register : bool
        Register the level-1 frames to level 1.5 first.
    region : tuple, optional
        ``(bottom_left, top_right)``: `~astropy.coordinates.SkyCoord` corners, or helioprojective
        ``(x, y)`` pairs in arcsec, seen at ``reference_time`` (derotating) or as ``submap`` reads
        them (cropping).
    derotate : bool
        Follow the solar rotation: every frame reprojected onto the region at ``reference_time``.
    reference_time : `~astropy.time.Time`, optional
        Of the derotation; default the middle frame of the first channel.
    rebin : tuple of int, optional
    normalize : bool
        Divide by the exposure times.
    min_correlation, normalization, uncertainty, significance
        See `~sunpy_timelag.timelag_maps`; the figures mask the pixels whose chance probability
        exceeds `~sunpy_timelag.plotting.SIGNIFICANCE_LEVEL` when ``significance`` is asked for.
    command : str
        The command, for the manifest and the maps' ``HISTORY``.

    Returns
    -------
    dict
        ``(A, B)`` -> `~sunpy_timelag.PairMaps`.
    """
    import matplotlib
    from dask.diagnostics import ProgressBar

    matplotlib.use("Agg")  # figures are written, not shown
    channels = list(dict.fromkeys(channel for pair in pairs for channel in pair))
    files = {channel: resolve_files(pattern.format(channel=channel)) for channel in channels}
    with ResultsFolder(out, [file for channel in channels for file in files[channel]]) as folder:
        cubes = []
        for channel in channels:
            with warnings.catch_warnings(record=True) as caught:  # e.g. frames left out for their QUALITY
                warnings.simplefilter("always", TimelagWarning)
                cube = TimelagCube.from_files(files[channel])
            _step(f"{channel}: {cube.data.shape[0]} frames of {cube.data.shape[2]}x{cube.data.shape[1]} pixels, "
                  f"{cube.time[0].isot} to {cube.time[-1].isot}")
            for warning in caught:
                _step(f"{channel}: {warning.message}")
            if derotate and reference_time is None:
                reference_time = cube.time[cube.data.shape[0] // 2]
            cubes.append(_prepare(cube, register=register, region=region, derotate=derotate,
                                  reference_time=reference_time, normalize=normalize, rebin=rebin))
        _step(f"computing {len(pairs)} pair(s) within lags {lag_bounds[0]:.0f} to {lag_bounds[1]:.0f}")
        with ProgressBar(minimum=1):
            results = timelag_maps(cubes, pairs=pairs, lag_bounds=lag_bounds, min_correlation=min_correlation,
                                   normalization=normalization, uncertainty=uncertainty, significance=significance)
        options = {
            "pattern": pattern, "pairs": [f"{a}-{b}" for a, b in pairs],
            "lag_bounds_s": u.Quantity(lag_bounds).to_value(u.s).tolist(), "register": register,
            "region": _region_record(region), "derotate": derotate,
            "reference_time": None if reference_time is None else reference_time.isot,
            "rebin": rebin, "normalize": normalize, "min_correlation": min_correlation,
            "normalization": normalization, "uncertainty": uncertainty, "significance": significance,
        }
        history = _history(command, options)
        for result in (result for maps in results.values() for result in maps if result is not None):
            result.meta["history"] = "\n".join([result.meta["history"], *history])
        maps_written = results.outputs()
        for name, write in maps_written.items():
            folder.write(name, write)
        for pair, maps in results.items():
            folder.write(f"timelag_{pair[0]}_{pair[1]}.png", lambda p, m=maps, pair=pair: _figure(m, pair, p))
        folder.write("timelag_grid.png", lambda p: _save(plot_pair_grid(results), p))
        folder.write("lag_histograms.png", lambda p: _save(plot_lag_histograms(results).figure, p))
        for stale in result_files(folder.path):  # maps of an earlier run, of pairs or fields not computed now
            if stale.name not in maps_written:
                stale.unlink()
        folder.complete(command=command, options=options,
                        inputs={str(channel): [file.full_name for file in files[channel]] for channel in channels})
    _step(f"wrote {len(maps_written)} FITS maps, {len(results) + 2} figures and {MANIFEST} to {out}")
    return results


def _history(command, options):
    """``HISTORY`` lines of the preparation (what the maps themselves cannot know), one FITS card each."""
    rebin = "none" if options["rebin"] is None else ",".join(map(str, options["rebin"]))
    lines = [f"sunpy-timelag {command}: register={options['register']} derotate={options['derotate']}",
             f"normalize={options['normalize']} rebin={rebin}"]
    if options["region"] is not None:
        lines.append("region (arcsec): " + " to ".join(f"({x:.1f}, {y:.1f})" for x, y in options["region"]))
    return lines


def _prepare(cube, *, register, region, derotate, reference_time, normalize, rebin):
    """One channel's cube prepared in the physically right order: register, derotate or crop, normalise, rebin."""
    if register:
        cube = cube.register()
    if derotate:
        cube = cube.derotate(**_corners(cube, region, reference_time), reference_time=reference_time)
    elif region is not None:
        cube = cube.submap(**_corners(cube, region))
    if normalize:
        cube = cube.normalize_exposure()
    if rebin:
        cube = cube.rebin(rebin)
    return cube


def _corners(cube, region, time=None):
    """
    ``bottom_left`` and ``top_right`` of the region (none: the whole field) as SkyCoords: given ones as
    they are, arcsec pairs in the cube's helioprojective frame at ``time``.
    """
    if region is None:
        return {}
    from astropy.coordinates import SkyCoord

    frame = cube.wcs.pixel_to_world(0, 0, 0)[0].frame
    if time is not None:
        frame = frame.replicate_without_data(obstime=time)
    corners = [corner if isinstance(corner, SkyCoord) else SkyCoord(*corner * u.arcsec, frame=frame)
               for corner in region]
    return dict(zip(("bottom_left", "top_right"), corners, strict=True))


def _region_record(region):
    """The region for the manifest: helioprojective arcsec of the two corners."""
    if region is None:
        return None
    return [[float(corner.Tx.to_value(u.arcsec)), float(corner.Ty.to_value(u.arcsec))] if hasattr(corner, "Tx")
            else [float(value) for value in corner] for corner in region]


def _figure(maps, pair, path):
    """The lag (unreliable pixels masked, robust symmetric limits) and peak correlation of one pair."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize

    results = {pair: maps}
    limit = lag_limit(results).to_value(u.s)
    figure = plt.figure(figsize=(11, 4.8), dpi=150)
    lag = type(maps.timelag)(maps.timelag.data, maps.timelag.meta, mask=~reliable_pixels(maps))
    for i, (title, result, label, scale) in enumerate([
        ("time lag", lag, "lag of B behind A [s]", {"norm": Normalize(vmin=-limit, vmax=limit)}),
        ("peak cross-correlation", maps.correlation, "", {}),
    ]):
        axes = figure.add_subplot(1, 2, i + 1, projection=result)
        image = result.plot(axes=axes, title=f"{pair[0]}-{pair[1]} {title}", **scale)
        figure.colorbar(image, ax=axes, label=label, shrink=0.8)
    masked = f"peak correlation < {MIN_CORRELATION:g}" + (
        f" or chance probability > {SIGNIFICANCE_LEVEL:g}" if maps.significance is not None else "")
    figure.suptitle(f"{maps.timelag.name}\n{SIGN_CONVENTION}; masked: {masked}", fontsize="medium")
    _save(figure, path)


def _save(figure, path):
    import matplotlib.pyplot as plt

    figure.savefig(path, format="png", dpi=150)
    plt.close(figure)


def demo(args):
    """
    Run the whole pipeline on the full-disk synthetic observation and compare with its ground truth.

    Level-1 files as the archive serves them -> register -> derotate onto the active region at the
    reference time -> normalise -> maps of the standard pairs -> figures.
    """
    from .data import make_full_disk_observation

    with tempfile.TemporaryDirectory(prefix="sunpy-timelag-demo-") as scratch:
        data = Path(args.data) if args.data else Path(scratch)
        pairs = args.pairs or [(94, 335), (335, 211), (335, 193), (335, 171), (211, 171), (193, 171)]
        channels = list(dict.fromkeys(channel for pair in pairs for channel in pair))
        _step(f"writing a synthetic full-disk AIA level-1 observation ({args.duration:.1f}, channels "
              f"{', '.join(map(str, channels))}) to {data}")
        observation = make_full_disk_observation(data, channels=channels, duration=args.duration, seed=args.seed)
        results = analyse(str(data / "{channel}" / "*.fits"), pairs, args.lag_bounds, Path(args.out),
                          register=True, region=(observation.bottom_left, observation.top_right), derotate=True,
                          reference_time=observation.reference_time, command="demo", **_analysis_options(args))
    print(f"\n{'pair':>8} {'median |lag - truth| [s]':>26} {'within one cadence':>20} {'median correlation':>20}")
    for (a, b), maps in results.items():
        cadence = maps.timelag.meta["cadence"]
        truth = observation.true_timelag(a, b)
        loops = np.isfinite(truth)
        error = np.abs(maps.timelag.data - truth)[loops]
        print(f"{a:>4}-{b:<3} {np.nanmedian(error):>26.2f} {np.mean(error <= cadence):>20.1%} "
              f"{np.nanmedian(maps.correlation.data[loops]):>20.2f}")
    print(f"\nResults in {Path(args.out).resolve()}")
    return 0


def run(args):
    """Run the analysis on real data."""
    analyse(args.pattern, args.pairs, args.lag_bounds, Path(args.out), register=args.register, region=args.region,
            derotate=args.derotate, reference_time=args.reference_time, rebin=args.rebin,
            normalize=not args.no_normalize, **_analysis_options(args))
    print(f"\nResults in {Path(args.out).resolve()}")
    return 0


def _analysis_options(args):
    return {"min_correlation": args.min_correlation, "normalization": args.normalization,
            "uncertainty": args.uncertainty, "significance": args.significance}


def _parser():
    parser = argparse.ArgumentParser(prog="sunpy-timelag", description=__doc__.strip().splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--lag-bounds", nargs=2, type=parse_duration, metavar=("MIN", "MAX"),
                        help="smallest and largest lag searched, e.g. -3h 3h")
    common.add_argument("--pairs", type=_parse_pairs, help="channel pairs, e.g. 335-171,211-193")
    common.add_argument("--out", default="timelag-results",
                        help="results folder, checked first and held for the run (default: %(default)s)")
    common.add_argument("--normalization", choices=("global", "overlap"), default="global",
                        help="the cross-correlation: 'global' (default), z-scores over the whole series divided "
                             "by N, as sunkit-image and Viall & Klimchuk (2012), which leans towards zero lag; "
                             "'overlap', the Pearson correlation of the samples each lag overlaps, unbiased, lags "
                             "up to half the series")
    common.add_argument("--min-correlation", type=_parse_correlation, metavar="R",
                        help="set the lag to NaN where the peak correlation is below R, a number in [-1, 1] "
                             f"(the figures always mask peak correlations below {MIN_CORRELATION:g})")
    common.add_argument("--uncertainty", action="store_true",
                        help="also write uncertainty_A_B.fits: the one-sigma uncertainty of the lag in seconds, "
                             "from the curvature of the correlation peak and the noise of the light curves")
    common.add_argument("--significance", action="store_true",
                        help="also write significance_A_B.fits: the chance probability of a peak correlation "
                             "this high between unrelated series with the same autocorrelations; the figures "
                             f"then also mask pixels above {SIGNIFICANCE_LEVEL:g}")

    demo_parser = commands.add_parser("demo", parents=[common], help="run on the built-in synthetic observation")
    demo_parser.add_argument("--duration", type=parse_duration, default=2 * u.h, help="default: 2h")
    demo_parser.add_argument("--data", help="keep the synthetic FITS files in this folder (default: temporary)")
    demo_parser.add_argument("--seed", type=int, default=0)
    demo_parser.set_defaults(handler=demo, default_bounds=(-1 * u.h, 1 * u.h))

    run_parser = commands.add_parser("run", parents=[common], help="run on FITS files")
    run_parser.add_argument("pattern", type=_parse_pattern,
                            help="files of each channel, with {channel}, e.g. 'obs/{channel}/*.fits'")
    run_parser.add_argument("--register", action="store_true",
                            help="register level-1 frames to level 1.5 first (as aiapy's register: north up, 0.6 "
                                 "arcsec pixels, the Sun's centre at the centre); needed before --derotate on "
                                 "level-1 files")
    run_parser.add_argument("--region", type=_parse_region, metavar="X0,Y0,X1,Y1",
                            help="helioprojective arcsec of the bottom-left and top-right corners of the region "
                                 "analysed; with --derotate seen at the reference time, else a crop of every frame")
    run_parser.add_argument("--derotate", action="store_true",
                            help="follow the solar rotation: reproject every frame onto the region (default the "
                                 "whole field) as seen at the reference time, so that a pixel stays on one patch "
                                 "of the surface (sunpy's differential rotation)")
    run_parser.add_argument("--reference-time", type=_parse_time, metavar="TIME",
                            help="ISO time of the derotation's grid (default: the middle frame)")
    run_parser.add_argument("--rebin", type=_parse_bin, help="bin factors t,y,x, e.g. 1,2,2")
    run_parser.add_argument("--no-normalize", action="store_true", help="do not divide by the exposure times")
    run_parser.set_defaults(handler=run, default_bounds=(-3 * u.h, 3 * u.h))
    return parser


def _shield_negative_values(argv):
    """
    Let ``--lag-bounds -3h 3h`` and ``--region -300,100,-100,250`` through argparse, which takes a value
    starting with ``-`` for an option: the values after them get a leading space, which their parsers ignore.
    """
    argv = list(argv)
    for i, token in enumerate(argv):
        count = {"--lag-bounds": 2, "--region": 1}.get(token, 0)
        argv[i + 1 : i + 1 + count] = [f" {value}" for value in argv[i + 1 : i + 1 + count]]
    return argv


def main(argv=None):
    """Entry point of ``sunpy-timelag``."""
    parser = _parser()
    args = parser.parse_args(_shield_negative_values(sys.argv[1:] if argv is None else argv))
    if args.lag_bounds is None:
        args.lag_bounds = args.default_bounds
    args.lag_bounds = u.Quantity(args.lag_bounds)
    if args.command == "run" and not args.pairs:
        parser.error("run needs --pairs, e.g. --pairs 335-171,211-193")
    try:
        return args.handler(args)
    except (OSError, ValueError, TypeError) as error:  # the documented types (sunpy_timelag.exceptions)
        print(f"sunpy-timelag: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

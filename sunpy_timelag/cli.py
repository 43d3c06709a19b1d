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
from pathlib import Path

import astropy.units as u
import numpy as np
from fsspec.implementations.local import LocalFileSystem

from . import __version__
from .analysis import parse_pair, timelag_maps
from .cube import TimelagCube
from .exceptions import OutputPathError
from .io.files import resolve_files
from .io.write import lock_folder, write_atomically

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
        pairs = [parse_pair(pair) for pair in text.split(",")]
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


def analyse(pattern, pairs, lag_bounds, out, *, rebin=None, normalize=True, min_correlation=None, command="run"):
    """
    Build the cubes of the channels in ``pairs``, compute their maps and write them.

    Parameters
    ----------
    pattern : str
        Path, glob or URL of the files of one channel, with ``{channel}`` in it.
    pairs : list of (int, int)
        Channel pairs ``(A, B)``.
    lag_bounds : `~astropy.units.Quantity`
    out : pathlib.Path
        Results folder (`ResultsFolder`): ``timelag_A_B.fits``, ``correlation_A_B.fits`` and a PNG
        per pair, then ``manifest.json``.
    rebin : tuple of int, optional
    normalize : bool
        Divide by the exposure times.
    min_correlation : float, optional
    command : str
        The command, for the manifest.

    Returns
    -------
    dict
        ``(A, B)`` -> `~sunpy_timelag.analysis.PairMaps`.
    """
    from dask.diagnostics import ProgressBar

    channels = list(dict.fromkeys(channel for pair in pairs for channel in pair))
    files = {channel: resolve_files(pattern.format(channel=channel)) for channel in channels}
    with ResultsFolder(out, [file for channel in channels for file in files[channel]]) as folder:
        cubes = [_prepare(channel, files[channel], normalize=normalize, rebin=rebin) for channel in channels]
        _step(f"computing {len(pairs)} pair(s) within lags {lag_bounds[0]:.0f} to {lag_bounds[1]:.0f}")
        with ProgressBar(minimum=1):
            results = timelag_maps(cubes, pairs=pairs, lag_bounds=lag_bounds, min_correlation=min_correlation)
        for (a, b), maps in results.items():
            for kind, result in maps._asdict().items():
                if result is not None:  # uncertainty and significance only when asked for
                    folder.write(f"{kind}_{a}_{b}.fits", result.save)
            folder.write(f"timelag_{a}_{b}.png", lambda p, m=maps, pair=(a, b): _figure(m, pair, p))
        folder.complete(command=command, options={
            "pattern": pattern, "pairs": [f"{a}-{b}" for a, b in pairs],
            "lag_bounds_s": u.Quantity(lag_bounds).to_value(u.s).tolist(), "rebin": rebin, "normalize": normalize,
            "min_correlation": min_correlation,
        }, inputs={str(channel): [file.full_name for file in files[channel]] for channel in channels})
    _step(f"wrote {2 * len(results)} FITS maps, {len(results)} figures and {MANIFEST} to {out}")
    return results


def _prepare(channel, files, *, normalize, rebin):
    """The cube of one channel, prepared as the options say."""
    cube = TimelagCube.from_files(files)
    _step(f"{channel}: {cube.data.shape[0]} frames of {cube.data.shape[2]}x{cube.data.shape[1]} pixels, "
          f"{cube.time[0].isot} to {cube.time[-1].isot}")
    if normalize:
        cube = cube.normalize_exposure()
    if rebin:
        cube = cube.rebin(rebin)
    return cube


def _figure(maps, pair, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = plt.figure(figsize=(11, 4.6))
    for i, (title, result, label) in enumerate(
        [("time lag", maps.timelag, "lag [s]"), ("peak cross-correlation", maps.correlation, "")]
    ):
        axes = figure.add_subplot(1, 2, i + 1, projection=result)
        image = result.plot(axes=axes, title=f"{pair[0]}-{pair[1]} {title}")
        figure.colorbar(image, ax=axes, label=label, shrink=0.8)
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=90)
    plt.close(figure)


def demo(args):
    """Run the main job on the synthetic observation and compare with its ground truth."""
    from .data import make_synthetic_observation

    with tempfile.TemporaryDirectory(prefix="sunpy-timelag-demo-") as scratch:
        data = Path(args.data) if args.data else Path(scratch)
        _step(f"writing a synthetic AIA observation ({args.duration:.1f}, 6 channels) to {data}")
        observation = make_synthetic_observation(data, duration=args.duration, drop_frame=True, seed=args.seed)
        pairs = args.pairs or [(94, 335), (335, 211), (335, 193), (335, 171), (211, 171), (193, 171)]
        results = analyse(str(data / "{channel}" / "*.fits"), pairs, args.lag_bounds, Path(args.out), command="demo")
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
    analyse(args.pattern, args.pairs, args.lag_bounds, Path(args.out), rebin=args.rebin,
            normalize=not args.no_normalize, min_correlation=args.min_correlation)
    print(f"\nResults in {Path(args.out).resolve()}")
    return 0


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

    demo_parser = commands.add_parser("demo", parents=[common], help="run on the built-in synthetic observation")
    demo_parser.add_argument("--duration", type=parse_duration, default=2 * u.h, help="default: 2h")
    demo_parser.add_argument("--data", help="keep the synthetic FITS files in this folder (default: temporary)")
    demo_parser.add_argument("--seed", type=int, default=0)
    demo_parser.set_defaults(handler=demo, default_bounds=(-1 * u.h, 1 * u.h))

    run_parser = commands.add_parser("run", parents=[common], help="run on FITS files")
    run_parser.add_argument("pattern", type=_parse_pattern,
                            help="files of each channel, with {channel}, e.g. 'obs/{channel}/*.fits'")
    run_parser.add_argument("--rebin", type=_parse_bin, help="bin factors t,y,x, e.g. 1,2,2")
    run_parser.add_argument("--min-correlation", type=float, help="mask lags whose peak correlation is lower")
    run_parser.add_argument("--no-normalize", action="store_true", help="do not divide by the exposure times")
    run_parser.set_defaults(handler=run, default_bounds=(-3 * u.h, 3 * u.h))
    return parser


def _shield_negative_durations(argv):
    """
    Let ``--lag-bounds -3h 3h`` through argparse, which takes ``-3h`` for an option.

    The two values after ``--lag-bounds`` get a leading space, which `parse_duration` ignores.
    """
    argv = list(argv)
    for i, token in enumerate(argv):
        if token == "--lag-bounds":
            argv[i + 1 : i + 3] = [f" {value}" for value in argv[i + 1 : i + 3]]
    return argv


def main(argv=None):
    """Entry point of ``sunpy-timelag``."""
    parser = _parser()
    args = parser.parse_args(_shield_negative_durations(sys.argv[1:] if argv is None else argv))
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

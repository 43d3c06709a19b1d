"""
The maps of many channel pairs as one result set, saved to a folder and loaded back whole.

`~sunpy_timelag.timelag_maps` returns a `TimelagResults`: the dict ``(A, B)`` ->
`~sunpy_timelag.PairMaps` it always was, with `TimelagResults.save` and `TimelagResults.load`.
A folder of results holds one FITS file per map, named ``<field>_<A>_<B>.fits`` after the field
of `~sunpy_timelag.PairMaps` (``timelag_335_171.fits``, ``correlation_335_171.fits``, and
``uncertainty_...``, ``significance_...`` where computed), each written by
`~sunpy_timelag.ResultMap.save` (mask and uncertainty included) and read by
`~sunpy_timelag.load_map`: the folder the ``sunpy-timelag`` command writes is one.
"""
import re
from pathlib import Path

from .io.write import write_atomically
from .maps import KINDS, load_map

__all__ = ["TimelagResults", "result_files"]

#: The name of a result map's file: ``<field>_<A>_<B>.fits``.
_NAME = re.compile(rf"^({'|'.join(KINDS)})_(\d+)_(\d+)\.fits$")


class TimelagResults(dict):
    """
    The maps of many channel pairs: a dict ``(A, B)`` -> `~sunpy_timelag.PairMaps`, saved and loaded whole.

    Made by `~sunpy_timelag.timelag_maps`; ``TimelagResults(mapping)`` wraps any such dict.
    """

    def outputs(self):
        """
        The files `save` writes: ``<field>_<A>_<B>.fits`` -> a function that writes it to a path it is given.

        For writers that place each file themselves (e.g. atomically into a results folder).

        Returns
        -------
        dict
            File name -> ``write(path)``.
        """
        return {f"{field}_{a}_{b}.fits": result.save
                for (a, b), maps in self.items() for field, result in maps._asdict().items() if result is not None}

    def save(self, directory, overwrite=False):
        """
        Write every map of every pair into ``directory``, one FITS file each, atomically.

        Parameters
        ----------
        directory : str or os.PathLike
            Created if needed.
        overwrite : bool, optional
            Replace the result maps already in ``directory``: those of the same names, and
            those of other pairs or fields, which are removed so that the folder holds this
            result set alone.

        Returns
        -------
        list of pathlib.Path
            The files written.

        Raises
        ------
        FileExistsError
            If ``directory`` holds result maps and ``overwrite`` is False.
        """
        directory = Path(directory).expanduser()
        earlier = result_files(directory) if directory.is_dir() else []
        if earlier and not overwrite:
            raise FileExistsError(f"{directory} holds result maps ({earlier[0].name}): give overwrite=True to "
                                  "replace them, or choose another folder")
        outputs = self.outputs()
        written = [write_atomically(directory / name, write) for name, write in outputs.items()]
        for stale in earlier:
            if stale.name not in outputs:
                stale.unlink()
        return written

    @classmethod
    def load(cls, directory):
        """
        The result set saved in ``directory`` (by `save`, or by the ``sunpy-timelag`` command).

        Parameters
        ----------
        directory : str or os.PathLike

        Returns
        -------
        `TimelagResults`
            Pairs ordered hot to cool (`~sunpy_timelag.HOT_TO_COOL`), as
            `~sunpy_timelag.timelag_maps` orders them by default; every map with its mask,
            uncertainty and header.

        Raises
        ------
        FileNotFoundError
            If ``directory`` is not a folder, holds no result maps, or lacks the time-lag or
            correlation map of a pair.
        """
        from .analysis import HOT_TO_COOL, PairMaps

        directory = Path(directory).expanduser()
        if not directory.is_dir():
            raise FileNotFoundError(f"no results folder at {directory}")
        found = {}
        for path in result_files(directory):
            field, a, b = _NAME.match(path.name).groups()
            found.setdefault((int(a), int(b)), {})[field] = path
        if not found:
            raise FileNotFoundError(f"{directory} holds no result maps (files such as timelag_335_171.fits)")

        def rank(channel):
            return HOT_TO_COOL.index(channel) if channel in HOT_TO_COOL else len(HOT_TO_COOL), channel

        results = cls()
        for pair in sorted(found, key=lambda pair: (rank(pair[0]), rank(pair[1]))):
            missing = [f"{field}_{pair[0]}_{pair[1]}.fits" for field in ("timelag", "correlation")
                       if field not in found[pair]]
            if missing:
                raise FileNotFoundError(f"{directory} holds maps of the pair {pair[0]}-{pair[1]} but not {missing[0]}")
            results[pair] = PairMaps(**{field: load_map(path) for field, path in found[pair].items()})
        return results


def result_files(directory):
    """
    The result maps in a folder: its files named ``<field>_<A>_<B>.fits``, sorted by name.

    Parameters
    ----------
    directory : str or os.PathLike

    Returns
    -------
    list of pathlib.Path
    """
    return sorted(path for path in Path(directory).iterdir() if _NAME.match(path.name) and path.is_file())

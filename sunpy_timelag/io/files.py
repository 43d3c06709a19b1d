"""
Resolve user input (globs, paths, fsspec URLs) to a list of openable files.
"""
import os

import fsspec
from fsspec.core import url_to_fs
from fsspec.utils import stringify_path

__all__ = ["resolve_files"]

_GLOB_CHARACTERS = "*?["


def resolve_files(paths):
    """
    Expand a glob, a path, an fsspec URL or a list of them into `fsspec.core.OpenFile` objects.

    Parameters
    ----------
    paths : str, os.PathLike or list of these
        Local paths, ``file://``, ``memory://`` or any other fsspec URL; each may
        contain glob patterns. Globs are expanded and sorted by name. Items that are
        already `fsspec.core.OpenFile` objects are kept as they are. ``memory://`` files
        live in the memory of the process that wrote them: a cube over them computes with
        threads (Dask's default) but not on a cluster of processes (``dask.distributed``),
        whose workers do not have them.

    Returns
    -------
    list of `fsspec.core.OpenFile`
        One per file, in the order given (globs expanded in sorted order). They are
        picklable and open the file in binary mode when entered.

    Raises
    ------
    FileNotFoundError
        If a glob matches nothing or a path does not exist.
    IsADirectoryError
        If a path is a folder (give a glob of the files in it).
    ValueError
        If ``paths`` is empty.
    """
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    paths = list(paths)
    if not paths:
        raise ValueError("paths is empty: give a glob, a path, an fsspec URL or a list of them")
    files = []
    for path in paths:
        if isinstance(path, fsspec.core.OpenFile):  # already resolved
            files.append(path)
            continue
        path = stringify_path(path)
        fs, fs_path = url_to_fs(path)
        if any(character in fs_path for character in _GLOB_CHARACTERS):
            matches = sorted(fs.glob(fs_path))
            if not matches:
                raise FileNotFoundError(f"no file matches the glob {path!r}")
        elif fs.isfile(fs_path):
            matches = [fs_path]
        elif fs.isdir(fs_path):
            raise IsADirectoryError(f"{path!r} is a folder: give its files, e.g. '{path.rstrip('/')}/*.fits'")
        else:
            raise FileNotFoundError(f"no such file: {path!r}")
        files.extend(fsspec.core.OpenFile(fs, match, mode="rb") for match in matches)
    return files

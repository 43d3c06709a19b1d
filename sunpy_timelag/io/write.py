"""
Atomic output: a crash never leaves a half-written file, and inputs are never overwritten.
"""
import os
import tempfile
from pathlib import Path

__all__ = ["write_atomically"]


def write_atomically(path, write, protected=()):
    """
    Write ``path`` through a temporary file in the same folder, then rename it into place.

    Parameters
    ----------
    path : str or os.PathLike
        The file to (over)write.
    write : callable
        ``write(temporary_path)`` writes the whole output to the path it is given.
        The temporary name keeps ``path``'s suffix, so format detection by suffix works.
    protected : iterable of str or os.PathLike
        Input files that must not be overwritten.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        If ``path`` is one of the ``protected`` files.
    """
    path = Path(path)
    if any(path.resolve() == Path(p).resolve() for p in protected):
        raise ValueError(f"refusing to write {path}: it is one of the inputs")
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=path.suffix)
    os.close(descriptor)
    try:
        os.remove(temporary)  # writers such as astropy refuse to overwrite an existing file
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    return path

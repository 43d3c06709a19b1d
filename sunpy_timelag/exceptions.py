"""
Errors and warnings of `sunpy_timelag`.

Bad input raises the standard Python types, so that ``except OSError`` or ``except ValueError``
works as with any library, and every message names the file, folder or argument at fault:

* `OSError` for files and folders: a missing file (`FileNotFoundError`), a folder given where a file
  is expected (`IsADirectoryError`), an existing output (`FileExistsError`), and the two classes
  below, for an input file that cannot be read as a frame and for an output path the package will
  not write to;
* `ValueError` for a value outside its domain (a zero bin factor, frames that cannot form one cube,
  lag bounds selecting no lag, ...);
* `TypeError` for an argument of the wrong type (``iterations=2.5``).

The ``sunpy-timelag`` command prints any of these as one line, without a traceback, and exits
with status 1.
"""

__all__ = ["InputFileError", "OutputPathError", "InterruptedWriteWarning"]


class InputFileError(OSError):
    """
    An input file that cannot be read as one frame of a cube; the message names it.

    Raised for a file that is not FITS, is compressed as a whole (``.fits.gz``), is truncated,
    has an unreadable header card, or has no image at the HDU asked for.
    """


class OutputPathError(OSError):
    """
    An output path that `sunpy_timelag` will not write to; the message names it and says what to do.

    Raised for something at a `~sunpy_timelag.prep.PrepMixin.to_zarr` path that is not a store this
    package wrote (it is never deleted), and for a results folder of ``sunpy-timelag run`` that is a
    file, cannot be created or written, holds input files, or is in use by another run.
    """


class InterruptedWriteWarning(UserWarning):
    """
    What an interrupted write left behind (a killed process, a power cut) was found and resolved.

    Issued by the next write or read of the same path: a partial output removed, or a replacement
    that was cut between its two renames completed. See :ref:`reliability`.
    """

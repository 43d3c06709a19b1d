"""
Header scan: read and check the FITS headers of many frames without their data (in threads for remote files).
"""
import contextlib
import itertools
import operator
import os
import re
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from astropy.io import fits
from astropy.time import Time, TimeDelta
from fsspec.implementations.local import LocalFileSystem
from fsspec.implementations.memory import MemoryFileSystem

from ..exceptions import InputFileError

__all__ = ["FrameHeader", "header_row", "scan_headers", "frame_times", "frame_exposures", "check_frames",
           "select_quality", "quality_meanings"]

#: Header keywords giving the observation time of a frame, in order of preference: the mid-exposure
#: time (AIA's ``T_OBS``, FITS ``DATE-AVG``) before the start (``DATE-OBS``, + ``EXPTIME`` / 2).
TIME_KEYWORDS = ("T_OBS", "DATE-AVG", "DATE-OBS")

_WCS_KEYWORDS = ("CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2", "CDELT1", "CDELT2")

#: FITS commentary keywords, whose cards a header row joins into one string of lines (as sunpy keeps them).
COMMENTARY_KEYWORDS = ("COMMENT", "HISTORY")

#: A keyword of the FITS standard; astropy is asked to look up any other (HIERARCH, or garbled).
_STANDARD_KEYWORD = re.compile(r"[A-Z0-9_-]{1,8}")


@dataclass(frozen=True)
class FrameHeader:
    """
    What the header scan learns of one frame.

    Attributes
    ----------
    name : str
        The file's full name (URL), for messages.
    hdu : int
        Index of the image HDU.
    header : dict
        The image header as a row of the cube's header table: keyword -> value
        (`header_row`); the astropy header itself is not kept.
    shape : tuple of int
        ``(ny, nx)``.
    dtype : numpy.dtype
        Dtype of the data as astropy returns it (after ``BSCALE``/``BZERO``).
    data_offset : int or None
        Byte offset of the (uncompressed) image data in the file; `None` for a
        tile-compressed image, which needs astropy to decompress it.
    """

    name: str
    hdu: int
    header: dict
    shape: tuple
    dtype: np.dtype
    data_offset: int | None


def _data_dtype(header):
    """
    The dtype astropy gives the scaled data of an image HDU with this header.

    As `astropy.io.fits.ImageHDU` scales it: integers with ``BSCALE``/``BZERO`` or a ``BLANK`` value
    become floats (NaN at ``BLANK``; AIA's level-1 files have ``BLANK``), except for the FITS
    convention for unsigned integers.
    """
    bitpix = header.get("ZBITPIX", header["BITPIX"])
    dtype = np.dtype(fits.hdu.base.BITPIX2DTYPE[bitpix])
    bscale, bzero = header.get("BSCALE", 1), header.get("BZERO", 0)
    blank = header.get("BLANK") if bitpix > 0 else None  # astropy ignores BLANK on float data
    if bscale == 1 and bzero == 0 and blank is None:
        return dtype
    if dtype.kind == "i" and bscale == 1 and bzero == 2 ** (8 * dtype.itemsize - 1):
        return np.dtype(f"u{dtype.itemsize}")  # FITS convention for unsigned integers
    return np.dtype(np.float32 if dtype.itemsize <= 2 else np.float64)


def read_frame_header(file, hdu=None):
    """
    Read the header of the image HDU of one FITS file, checking it is complete.

    Only the header blocks are read: the file is walked HDU by HDU, each header read as its
    2880-byte blocks up to its ``END`` card and parsed by `astropy.io.fits.Header.fromstring`, and
    the data skipped by the size the header gives (`astropy.io.fits.Header.data_size_padded`). An
    uncompressed image's data offset is then known without opening the file as an
    `~astropy.io.fits.HDUList`. A tile-compressed image's header is astropy's (translated from the
    binary table that holds it), and a file the walk cannot follow (damaged, not FITS, without the
    HDU asked for) is left to `astropy.io.fits.open`, which reads it or says what is wrong.

    Parameters
    ----------
    file : `fsspec.core.OpenFile`
    hdu : int, optional
        Index of the image HDU; by default the first HDU holding a 2-D image
        (HDU 1 of a tile-compressed AIA file).

    Returns
    -------
    `FrameHeader`

    Raises
    ------
    ~sunpy_timelag.exceptions.InputFileError
        If the file is not FITS, is compressed as a whole (``.fits.gz``), holds no 2-D image (at
        ``hdu``), or is truncated.
    TypeError
        If ``hdu`` is not an integer.
    """
    name = file.full_name
    index = hdu if hdu is None else _hdu_index(hdu)
    with file as stream:
        _check_uncompressed(stream.read(4), name)
        size = stream.seek(0, os.SEEK_END)
        try:
            found = _walk_to_image(stream, index)
        except _LeftToAstropy:
            found = None
        if found is None or found.kind == "compressed":
            found = _astropy_image(stream, index if found is None else found.index, name, found)
    index, header = found.index, found.header
    if found.kind is None or header.get("NAXIS") != 2:
        raise InputFileError(f"{name}: HDU {index} is not a 2-D image ({found.type_name}, "
                             f"NAXIS={header.get('NAXIS')})")
    if found.end > size:
        raise InputFileError(f"{name} is truncated: its header announces {found.end} bytes, the file has {size}")
    try:
        row = header_row(header)
    except Exception as error:  # whatever astropy raises on a garbled card
        problem = _unreadable_card(header) or repr(error)
        raise InputFileError(f"{name} has an unreadable header card: {problem}") from error
    try:
        shape, dtype = (int(row["NAXIS2"]), int(row["NAXIS1"])), _data_dtype(row)
    except (KeyError, ValueError, TypeError) as error:
        raise InputFileError(f"{name}: HDU {index} has no readable image size or type ({error!r})") from error
    return FrameHeader(name, index, row, shape, dtype, None if found.kind == "compressed" else found.data_offset)


#: FITS files are laid out in blocks of 2880 bytes, header cards in 80 bytes.
_BLOCK, _CARD = 2880, 80
_END_CARD = b"END".ljust(_CARD)
#: What astropy raises on a file it cannot read.
_FITS_ERRORS = (OSError, IndexError, KeyError, ValueError, TypeError, fits.VerifyError)


class _LeftToAstropy(Exception):
    """A file the block walk does not follow: `_astropy_image` reads it, or says what is wrong with it."""


@dataclass(frozen=True)
class _Found:
    """
    An HDU found in a file: its index, header, data offset and end (padding included), and its kind.

    ``kind`` is ``"image"`` for an uncompressed image, ``"compressed"`` for a tile-compressed one
    and `None` for an HDU that holds no image; ``type_name`` is astropy's class for it, when
    astropy read it (for messages).
    """

    index: int
    header: fits.Header
    data_offset: int
    end: int
    kind: str | None
    type_name: str = ""


def _walk_to_image(stream, index):
    """
    Find the image HDU wanted (``index``, or the first 2-D image) reading only the headers on the way.

    Raises
    ------
    _LeftToAstropy
        At anything but plain, complete headers of standard HDUs: no ``SIMPLE = T``, random
        groups, a header without an ``END`` card (as the standard writes it) or not ASCII, the end
        of the file before the HDU, or an HDU asked for that is no 2-D image.
    """
    offset = 0
    for position in itertools.count():
        header, data_offset = _read_header(stream, offset)
        try:
            primary = position == 0
            if primary and (header.get("SIMPLE") is not True or header.get("GROUPS")):
                raise _LeftToAstropy
            kind = _image_kind(header, primary)
            image = kind is not None and _naxis(header, kind) == 2
            end = data_offset + header.data_size_padded
        except _FITS_ERRORS:
            raise _LeftToAstropy from None
        if index == position or (index is None and image):
            if not image:
                raise _LeftToAstropy  # astropy names what the HDU is
            return _Found(position, header, data_offset, end, kind)
        offset = end


def _image_kind(header, primary):
    """``"image"``, ``"compressed"`` (a tile-compressed image) or `None`, as astropy's ``is_image`` tells them."""
    xtension = header.get("XTENSION")
    if primary or xtension == "IMAGE":
        return "image"
    if xtension == "BINTABLE" and header.get("ZIMAGE") is True:
        return "compressed"
    return None


def _naxis(header, kind):
    """The number of axes of the image (of a compressed image, not of its table)."""
    return header.get("ZNAXIS") if kind == "compressed" else header.get("NAXIS")


def _read_header(stream, offset):
    """The header starting at byte ``offset``, read block by block up to its ``END`` card, and its end."""
    stream.seek(offset)
    blocks = []
    while True:
        block = stream.read(_BLOCK)
        if len(block) < _BLOCK or not block.isascii():
            raise _LeftToAstropy  # the end of the file, a truncated header, or data: no END card on the way
        blocks.append(block)
        if _END_CARD in block and any(block[i:i + _CARD] == _END_CARD for i in range(0, _BLOCK, _CARD)):
            break
    raw = b"".join(blocks)
    try:
        return fits.Header.fromstring(raw.decode("ascii")), offset + len(raw)
    except _FITS_ERRORS:
        raise _LeftToAstropy from None


def _astropy_image(stream, index, name, found=None):
    """
    The image HDU as `astropy.io.fits.open` reads it.

    That is the HDU ``found`` by the walk (a tile-compressed image: astropy translates the header
    of the binary table holding it), else the HDU at ``index`` or the first 2-D image of a file
    the walk did not follow; errors name the file. The data offset and end are the walk's, or
    else astropy's.
    """
    stream.seek(0)
    try:
        with fits.open(stream, memmap=False, lazy_load_hdus=True) as hdulist:
            index = _image_hdu(hdulist, name) if index is None else _existing_hdu(hdulist, index, name)
            image = hdulist[index]
            header = image.header
            kind = "compressed" if isinstance(image, fits.CompImageHDU) else "image" if image.is_image else None
            if found is None:  # where the data lie: `fileinfo` is slow, but these files are rare
                info = hdulist.fileinfo(index)
                found = _Found(index, header, info["datLoc"], info["datLoc"] + info["datSpan"], kind)
    except InputFileError:
        raise
    except _FITS_ERRORS as error:
        raise InputFileError(f"{name} is not a readable FITS file: {error}") from error
    return _Found(found.index, header, found.data_offset, found.end, kind, type(image).__name__)


def header_row(header):
    """
    A header as a row of a cube's header table: a `dict` of keyword -> plain value.

    Keywords are upper case (as FITS writes them), a keyword given twice keeps its first value (as
    astropy reads it), values are Python scalars (`str`, `int`, `float`, `bool`; `None` for FITS's
    undefined value), and the cards of each commentary keyword (`COMMENTARY_KEYWORDS`) are joined
    into one string of lines, as sunpy keeps them when it reads a file (stripped of surrounding
    blanks). Blank-keyword cards (layout
    only) and the cards' comments are left out. An `astropy.io.fits.Header` is read card by card, each
    card parsed once; reading it whole is the test that no card is garbled.

    Parameters
    ----------
    header : `astropy.io.fits.Header` or dict-like

    Returns
    -------
    dict

    Raises
    ------
    Exception
        Whatever astropy raises on a card it cannot read.
    """
    row, commentary = {}, {}
    if isinstance(header, fits.Header):
        for card in header.cards:
            keyword = card.keyword
            if keyword in COMMENTARY_KEYWORDS:
                commentary.setdefault(keyword, []).append(str(card.value))
            elif keyword and keyword not in row:
                if not _STANDARD_KEYWORD.fullmatch(keyword):
                    header[keyword]  # noqa: B018 (looking it up is the test that astropy can)
                row[keyword] = _plain(card.value)
        row.update((keyword, "\n".join(lines).strip()) for keyword, lines in commentary.items())
        return row
    for key, value in header.items():
        keyword = str(key).upper()
        if keyword and keyword not in row:
            row[keyword] = _plain(value)
    return row


def _plain(value):
    """A header value as a plain Python value: NumPy scalars as Python's, FITS's undefined value as `None`."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, fits.card.Undefined):
        return None
    return value


def _image_hdu(hdulist, name):
    for index, hdu in enumerate(hdulist):
        if hdu.is_image and hdu.header.get("NAXIS") == 2:
            return index
    raise InputFileError(f"{name} has no 2-D image HDU")


def _hdu_index(hdu):
    try:
        return operator.index(hdu)
    except TypeError:
        raise TypeError(f"hdu must be the index of an HDU (an integer), got {hdu!r}") from None


def _existing_hdu(hdulist, index, name):
    try:
        hdulist[index]
    except IndexError:
        raise InputFileError(f"{name} has {len(hdulist)} HDU(s), numbered from 0: there is no hdu={index}") from None
    return index


#: The first bytes of files compressed as a whole, which astropy would decompress entirely on every read.
_COMPRESSED = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"PK\x03\x04": "zip"}


def _check_uncompressed(start, name):
    kind = next((kind for magic, kind in _COMPRESSED.items() if start.startswith(magic)), None)
    if kind is not None:
        raise InputFileError(
            f"{name} is {kind}-compressed as a whole: sunpy_timelag reads FITS files, plain or tile-compressed "
            "(as AIA distributes them), one frame at a time; decompress it first (e.g. gunzip), or tile-compress "
            "it (fpack)"
        )


@contextlib.contextmanager
def naming_unreadable_headers(names, first):
    """
    Turn an error raised while sunpy reads the first frame's header as a map into one naming it.

    sunpy's map reading of a header raises, on a value it cannot read, an error that names no file
    (sunpy's ``MapMetaValidationError``, a `ValueError` for a unit of stray bytes, wcslib's errors,
    ...). An error raised in this context whose message names none of the frames becomes an
    `~sunpy_timelag.exceptions.InputFileError` naming ``first``. (Garbled cards are found earlier:
    the header scan reads every card, `header_row`.)

    Parameters
    ----------
    names : list of str
    first : str
        Name of the frame whose header is read as a map in this context.
    """
    try:
        yield
    except Exception as error:
        if any(name in str(error) for name in names):
            raise
        raise InputFileError(f"{first}: its header cannot be read as a map ({error!r})") from error


def _unreadable_card(header):
    """The first card of ``header`` that cannot be read, described; `None` if all can."""
    for card in header.cards:
        try:
            header[card.keyword], card.value  # noqa: B018 (reading them is the test)
        except Exception as error:  # whatever astropy raises on a garbled card, on the way out of an error
            return f"{card.keyword!r} ({type(error).__name__}: {error})"
    return None


def scan_headers(files, hdu=None, max_workers=None):
    """
    Read the image headers of many files, in threads where the files are remote.

    Reading a header is a few reads of 2880 bytes and astropy parsing them, which holds Python's
    global interpreter lock: on a local disk (or in memory) threads only take turns, and the
    files are read one after the other. On other file systems (``s3://``, ``https://``, ...) a
    read waits on the network, and threads hide that latency.

    Parameters
    ----------
    files : list of `fsspec.core.OpenFile`
    hdu : int, optional
        See `read_frame_header`.
    max_workers : int, optional
        Number of threads; by default 1 for files that are all local or in memory, else
        ``min(32, 4 * os.cpu_count())``.

    Returns
    -------
    list of `FrameHeader`, in the order of ``files``.
    """
    if max_workers is None:
        nearby = all(isinstance(file.fs, _NEARBY_FILE_SYSTEMS) for file in files)
        max_workers = 1 if nearby else min(32, 4 * (os.cpu_count() or 1))
    if max_workers == 1:
        return [read_frame_header(file, hdu) for file in files]
    with ThreadPoolExecutor(max_workers=max_workers) as pool:
        return list(pool.map(lambda file: read_frame_header(file, hdu), files))


#: File systems without latency to hide: the local disk and the process's memory.
_NEARBY_FILE_SYSTEMS = (LocalFileSystem, MemoryFileSystem)


def frame_times(headers, names):
    """
    The mid-exposure time of each frame: one convention for all the frames of a cube.

    A frame's time is ``T_OBS`` (the mid-exposure time, as AIA writes it), else ``DATE-AVG`` (FITS's
    mean time), else ``DATE-OBS`` (the start) plus half of ``EXPTIME``, in the time scale of
    ``TIMESYS`` (UTC by default). Frames that give only ``DATE-OBS`` without an exposure time are
    timed by their start, which is accepted only if no frame gives its mid-exposure time: mixed, the
    two would put frames up to half an exposure off each other.

    Parameters
    ----------
    headers : list of dict-like
    names : list of str
        Names of the frames, for messages.

    Returns
    -------
    `astropy.time.Time`

    Raises
    ------
    ValueError
        If a frame has no observation time or an unreadable one, or gives only its start time while
        another gives its mid-exposure time.
    """
    strings, offsets, scales, starts, middles = [], [], set(), [], []
    for header, name in zip(headers, names, strict=True):
        keyword = next((key for key in TIME_KEYWORDS if header.get(key)), None)
        if keyword is None:
            raise ValueError(f"{name} has no observation time (none of {', '.join(TIME_KEYWORDS)})")
        strings.append(str(header[keyword]).rstrip("Z"))
        scales.add(str(header.get("TIMESYS", "UTC")).lower())
        exposure = _seconds(header.get("EXPTIME")) if keyword == "DATE-OBS" else 0.0
        offsets.append(0.0 if exposure is None else exposure / 2)
        (starts if exposure is None else middles).append((name, keyword))
    if starts and middles:
        (start, _), (middle, keyword) = starts[0], middles[0]
        raise ValueError(
            f"{start} gives only its start time (DATE-OBS, no EXPTIME) but {middle} its mid-exposure time "
            f"({keyword if keyword != 'DATE-OBS' else 'DATE-OBS and EXPTIME'}): their times would be up to half an "
            "exposure off; give every frame T_OBS, DATE-AVG, or DATE-OBS and EXPTIME"
        )
    if len(scales) > 1:
        raise ValueError(f"the frames use several time systems (TIMESYS): {sorted(scales)}")
    try:
        times = Time(strings, scale=scales.pop())
    except ValueError as error:
        bad = next(name for name, string in zip(names, strings, strict=True) if not _is_time(string))
        raise ValueError(f"{bad} has an unreadable observation time: {error}") from error
    return times + TimeDelta(offsets, format="sec") if any(offsets) else times


def frame_exposures(headers):
    """
    The exposure time of each frame in seconds, from ``EXPTIME``; NaN where absent or not a number.

    Parameters
    ----------
    headers : list of dict-like

    Returns
    -------
    numpy.ndarray
    """
    return np.array([_number_or_nan(header.get("EXPTIME")) for header in headers], dtype=float)


def _number_or_nan(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return np.nan


def _seconds(value):
    """An exposure time in seconds from a header value; `None` if absent or not a finite number >= 0."""
    seconds = _number_or_nan(value)
    return seconds if np.isfinite(seconds) and seconds >= 0 else None


def _is_time(string):
    try:
        Time(string)
    except ValueError:
        return False
    return True


def check_frames(headers, shapes, dtypes, names, times, pointing_tolerance=1.0):
    """
    Check that frames can form one cube: same shape, dtype and channel, distinct times, same pointing.

    Parameters
    ----------
    headers : list of dict-like
    shapes : list of tuple
    dtypes : list of numpy.dtype
    names : list of str
        Names of the frames, for messages.
    times : `astropy.time.Time`
    pointing_tolerance : float
        Largest shift, in pixels, allowed between the pointing of any frame and that
        of the first, anywhere in the field of view.

    Raises
    ------
    ValueError
        Naming the first offending frame.
    """
    for attribute, values in (("shape", shapes), ("dtype", dtypes)):
        bad = next((i for i, value in enumerate(values) if value != values[0]), None)
        if bad is not None:
            raise ValueError(f"{names[bad]} has {attribute} {values[bad]}, but {names[0]} has {values[0]}")
    for keyword in ("WAVELNTH", "INSTRUME"):
        values = [header.get(keyword) for header in headers]
        bad = next((i for i, value in enumerate(values) if value != values[0]), None)
        if bad is not None:
            raise ValueError(
                f"{names[bad]} has {keyword}={values[bad]!r}, but {names[0]} has {values[0]!r}: "
                "a cube holds one channel"
            )
    order = times.argsort(kind="stable")
    seconds = (times[order] - times[order[0]]).to_value("s")
    duplicate = np.flatnonzero(np.diff(seconds) <= 0)
    if duplicate.size:
        i, j = order[duplicate[0]], order[duplicate[0] + 1]
        raise ValueError(f"{names[i]} and {names[j]} have the same observation time {times[i].isot}")
    _check_pointing(headers, names, shapes[0], pointing_tolerance)


def _check_pointing(headers, names, shape, tolerance):
    """
    Bound the pixel shift between each frame's pointing and the first frame's.

    A change of reference value or pixel shifts the whole image; a change of roll
    angle or plate scale moves the corners of the image by the change times half
    the diagonal. Their sum bounds the shift anywhere in the field of view.
    """
    frames = list(zip(headers, names, strict=True))
    values = np.array([[_number(h, key, 0, name) for key in _WCS_KEYWORDS] for h, name in frames])
    angles = np.deg2rad([_roll_angle(h, name) for h, name in frames])
    crpix, crval, cdelt = values[:, 0:2], values[:, 2:4], values[:, 4:6]
    half_diagonal = 0.5 * np.hypot(*shape)
    shift = (
        np.abs((crval - crval[0]) / cdelt[0] - (crpix - crpix[0])).max(axis=1)
        + np.abs(angles - angles[0]) * half_diagonal
        + np.abs(cdelt / cdelt[0] - 1).max(axis=1) * half_diagonal
    )
    worst = int(np.argmax(shift))
    if shift[worst] > tolerance:
        raise ValueError(
            f"{names[worst]} points {shift[worst]:.2f} pixels away from {names[0]} "
            f"(more than pointing_tolerance={tolerance}): register the frames first"
        )


def _roll_angle(header, name):
    """Roll angle in degrees, from ``CROTA2`` or the PC matrix."""
    if "PC1_1" in header or "PC2_1" in header:
        return np.rad2deg(np.arctan2(_number(header, "PC2_1", 0, name), _number(header, "PC1_1", 1, name)))
    return _number(header, "CROTA2", 0, name)


def _number(header, keyword, default, name):
    """The number a header gives for ``keyword`` (``default`` if absent), or an error naming the frame."""
    value = header.get(keyword, default)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: {keyword} = {value!r} is not a number") from None


#: What `select_quality` does with frames flagged in ``QUALITY``.
QUALITY_CHOICES = ("exclude", "keep")
#: Flagged frames named in the warning of `select_quality`.
_NAMED = 3


def select_quality(headers, names, quality="exclude"):
    """
    The frames to keep, judged by AIA's ``QUALITY`` keyword as aiapy reads it.

    AIA sets bits of ``QUALITY`` (a 32-bit integer) for frames taken in non-nominal conditions:
    missing or corrupt data, an open image-stabilisation loop, eclipses, calibration, dark or
    quick-look images, ... (section 7.7.6 of the SDO user guide). aiapy's ``check_quality_flag``
    names the bits and calls a frame nominal only when none is set: a frame is *flagged* when its
    ``QUALITY`` is not 0 (a negative value is the same 32 bits read as a signed integer). A frame
    without ``QUALITY`` (not from AIA) is nominal.

    Parameters
    ----------
    headers : list of dict-like
    names : list of str
        Names of the frames, for messages.
    quality : {"exclude", "keep"}
        ``"exclude"``: leave the flagged frames out, with a warning naming how many, the first few
        and what their flags mean. ``"keep"``: keep every frame.

    Returns
    -------
    numpy.ndarray
        Boolean, one per frame: `True` for the frames to keep.

    Raises
    ------
    ValueError
        If ``quality`` is not one of `QUALITY_CHOICES`, a ``QUALITY`` is not an integer (naming its
        frame), or every frame is flagged and ``quality`` is ``"exclude"``.

    Warns
    -----
    ~sunpy_timelag.lags.TimelagWarning
        When flagged frames are left out.
    """
    if quality not in QUALITY_CHOICES:
        raise ValueError(f"quality must be one of {QUALITY_CHOICES}, got {quality!r}")
    flags = np.array([_quality(header, name) for header, name in zip(headers, names, strict=True)], dtype=np.int64)
    keep = (flags == 0) | (quality == "keep")
    flagged = np.flatnonzero(~keep)
    if flagged.size == 0:
        return keep
    flagged_what = "flagged in QUALITY (not nominal, as aiapy's check_quality_flag reads it)"
    if flagged.size == len(names):
        raise ValueError(f"all {flagged.size} frames are {flagged_what}: pass quality='keep' to use them")
    described = "; ".join(f"{names[i]} (QUALITY={flags[i]}: {', '.join(quality_meanings(flags[i]))})"
                          for i in flagged[:_NAMED])
    more = f"; and {flagged.size - _NAMED} more" if flagged.size > _NAMED else ""
    from ..lags import TimelagWarning

    warnings.warn(f"left out {flagged.size} of {len(names)} frames {flagged_what}: {described}{more}. "
                  "Pass quality='keep' to use them.", TimelagWarning,
                  stacklevel=3)
    return keep


def quality_meanings(quality):
    """
    What the bits set in a ``QUALITY`` value mean: aiapy's ``check_quality_flag``.

    Parameters
    ----------
    quality : int
        0 to 2**32 - 1.

    Returns
    -------
    list of str
        ``["nominal"]`` for 0.
    """
    try:
        from aiapy.utils import check_quality_flag
    except ImportError:  # aiapy < 0.11
        from aiapy.util import check_quality_flag
    return check_quality_flag(int(quality))


def _quality(header, name):
    """The ``QUALITY`` of a frame as 32 unsigned bits (0 when absent)."""
    value = header.get("QUALITY")
    if value is None or value == "":
        return 0
    try:
        if isinstance(value, bool) or float(value) != int(value):
            raise ValueError
        return int(value) & 0xFFFFFFFF
    except (TypeError, ValueError):
        raise ValueError(f"{name} has QUALITY={value!r}, which is not an integer") from None

"""
Header scan: read and check the FITS headers of many frames, in parallel, without their data.
"""
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from astropy.io import fits
from astropy.time import Time

__all__ = ["FrameHeader", "scan_headers", "frame_times", "check_frames"]

#: Header keywords giving the observation time of a frame, in order of preference:
#: the mid-exposure time (AIA's ``T_OBS``, FITS ``DATE-AVG``) before the start (``DATE-OBS``).
TIME_KEYWORDS = ("T_OBS", "DATE-AVG", "DATE-OBS")

_WCS_KEYWORDS = ("CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2", "CDELT1", "CDELT2")


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
    header : `astropy.io.fits.Header`
        The image header.
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
    header: fits.Header
    shape: tuple
    dtype: np.dtype
    data_offset: int | None


def _data_dtype(header):
    """The dtype astropy gives the scaled data of an image HDU with this header."""
    bitpix = header.get("ZBITPIX", header["BITPIX"])
    dtype = np.dtype(fits.hdu.base.BITPIX2DTYPE[bitpix])
    bscale, bzero = header.get("BSCALE", 1), header.get("BZERO", 0)
    if bscale == 1 and bzero == 0:
        return dtype
    if dtype.kind == "i" and bscale == 1 and bzero == 2 ** (8 * dtype.itemsize - 1):
        return np.dtype(f"u{dtype.itemsize}")  # FITS convention for unsigned integers
    return np.dtype(np.float32 if dtype.itemsize <= 2 else np.float64)


def read_frame_header(file, hdu=None):
    """
    Read the header of the image HDU of one FITS file, checking it is complete.

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
    OSError
        If the file is not FITS, holds no 2-D image or is truncated.
    """
    name = file.full_name
    with file as stream:
        size = file.fs.size(file.path)
        try:
            with fits.open(stream, memmap=False, lazy_load_hdus=True) as hdulist:
                index = _image_hdu(hdulist, name) if hdu is None else hdu
                image = hdulist[index]
                header = image.header
                # astropy's own record of where the data end (`fileinfo` re-serialises the header: slow)
                end = image._data_offset + image._data_size
        except (OSError, IndexError, ValueError, TypeError) as error:
            raise OSError(f"{name} is not a readable FITS file: {error}") from error
    if header.get("NAXIS") != 2:
        raise OSError(f"{name}: HDU {index} is not a 2-D image (NAXIS={header.get('NAXIS')})")
    if end > size:
        raise OSError(f"{name} is truncated: its header announces {end} bytes, the file has {size}")
    offset = None if isinstance(image, fits.CompImageHDU) else image._data_offset
    return FrameHeader(name, index, header, (header["NAXIS2"], header["NAXIS1"]), _data_dtype(header), offset)


def _image_hdu(hdulist, name):
    for index, hdu in enumerate(hdulist):
        if hdu.is_image and hdu.header.get("NAXIS") == 2:
            return index
    raise OSError(f"{name} has no 2-D image HDU")


def scan_headers(files, hdu=None, max_workers=None):
    """
    Read the image headers of many files in parallel.

    Parameters
    ----------
    files : list of `fsspec.core.OpenFile`
    hdu : int, optional
        See `read_frame_header`.
    max_workers : int, optional
        Number of threads; by default enough to hide the latency of remote files.

    Returns
    -------
    list of `FrameHeader`, in the order of ``files``.
    """
    max_workers = max_workers or min(32, 4 * (os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=max_workers) as pool:
        return list(pool.map(lambda file: read_frame_header(file, hdu), files))


def frame_times(headers, names):
    """
    The observation time of each frame.

    Taken from ``T_OBS`` (mid-exposure, as AIA writes it), else ``DATE-AVG``, else
    ``DATE-OBS``, in the time scale of ``TIMESYS`` (UTC by default).

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
        If a frame has no observation time or an unreadable one.
    """
    strings, scales = [], set()
    for header, name in zip(headers, names, strict=True):
        keyword = next((key for key in TIME_KEYWORDS if header.get(key)), None)
        if keyword is None:
            raise ValueError(f"{name} has no observation time (none of {', '.join(TIME_KEYWORDS)})")
        strings.append(str(header[keyword]).rstrip("Z"))
        scales.add(str(header.get("TIMESYS", "UTC")).lower())
    if len(scales) > 1:
        raise ValueError(f"the frames use several time systems (TIMESYS): {sorted(scales)}")
    try:
        return Time(strings, scale=scales.pop())
    except ValueError as error:
        bad = next(name for name, string in zip(names, strings, strict=True) if not _is_time(string))
        raise ValueError(f"{bad} has an unreadable observation time: {error}") from error


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
    values = np.array([[float(h.get(key, 0)) for key in _WCS_KEYWORDS] for h in headers])
    angles = np.deg2rad([_roll_angle(h) for h in headers])
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


def _roll_angle(header):
    """Roll angle in degrees, from ``CROTA2`` or the PC matrix."""
    if "PC1_1" in header or "PC2_1" in header:
        return np.rad2deg(np.arctan2(float(header.get("PC2_1", 0)), float(header.get("PC1_1", 1))))
    return float(header.get("CROTA2", 0))

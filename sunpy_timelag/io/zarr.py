"""
Persistence of a cube as a Zarr store, written atomically.

The store is one Zarr array, ``(n_time, ny, nx)`` in chunks of one frame, whose attribute
``"sunpy_timelag"`` holds (as one JSON document) everything else a cube is made of: the frames' times
(two-part Julian dates, exact), headers and exposure times, the channel, the unit and the celestial
WCS (its FITS header plus the exact reference pixel, scale, reference value and ``PCi_j``). Floats go
through JSON unchanged (``repr`` round-trips), so reading a store gives back the same numbers.

Writing goes through `sunpy_timelag.io.write.write_atomically`: the store is written in full beside
the target and renamed into place only once the data and metadata are complete, so a crash or an
error leaves either the previous store or the new one, never half a store, and the next write or read
resolves what a killed writer left. Only a store this package wrote is ever replaced. Zarr (2.16 or
later) is an optional dependency of `sunpy_timelag`.
"""
import json
import os
import threading
from pathlib import Path
from typing import NamedTuple

import astropy.units as u
import dask.array as da
import numpy as np
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS

from ..backend import is_cupy_array, to_numpy
from ..exceptions import OutputPathError
from .write import recover, write_atomically

__all__ = ["StoredCube", "write_cube_store", "read_cube_store"]

ATTRIBUTE = "sunpy_timelag"
FORMAT = "sunpy_timelag.TimelagCube/1"


class StoredCube(NamedTuple):
    """What a store holds: the parts a `~sunpy_timelag.TimelagCube` is built from (headers as plain dicts)."""

    data: da.Array
    time: Time
    headers: tuple
    exposure_time: u.Quantity
    wavelength: u.Quantity | None
    unit: u.UnitBase | None
    celestial_wcs: WCS


def write_cube_store(path, data, *, time, headers, exposure_time, wavelength, unit, celestial_wcs,
                     overwrite=False):
    """
    Write a cube's data and metadata to a Zarr store at ``path``, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        A local directory (created; its parent too).
    data : dask.array.Array
        ``(n_time, ny, nx)``, NumPy or CuPy chunks; computed here, frame by frame.
    time : `~astropy.time.Time`
    headers : sequence of dict-like
    exposure_time : `~astropy.units.Quantity`
    wavelength : `~astropy.units.Quantity` or None
    unit : `~astropy.units.UnitBase` or None
    celestial_wcs : `astropy.wcs.WCS`
    overwrite : bool, optional
        Replace an existing store written by this function (it stays untouched if writing fails).
        Anything else at ``path`` is never replaced; an empty folder is.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    FileExistsError
        If a store exists at ``path`` and ``overwrite`` is False.
    ~sunpy_timelag.exceptions.OutputPathError
        If something other than a store written by this function, or an empty folder, is at ``path``.
    ImportError
        If zarr is not installed.

    Warns
    -----
    ~sunpy_timelag.exceptions.InterruptedWriteWarning
        If an earlier write of ``path`` was interrupted (its leftovers are resolved first).
    """
    zarr = _zarr()
    attributes = json.dumps({
        "format": FORMAT,
        "time": {"jd1": time.jd1.tolist(), "jd2": time.jd2.tolist(), "scale": time.scale, "format": time.format},
        "headers": [_header_items(header) for header in headers],
        "exposure_time": _quantity(exposure_time),
        "wavelength": None if wavelength is None else _quantity(wavelength),
        "unit": None if unit is None else u.Unit(unit).to_string(),
        "celestial_wcs": {
            "header": celestial_wcs.to_header_string(),
            **{key: getattr(celestial_wcs.wcs, key).tolist() for key in ("crpix", "cdelt", "crval", "pc")},
        },
    }, default=_json_value)
    if is_cupy_array(data):
        data = data.map_blocks(to_numpy, meta=np.empty((0,) * data.ndim, dtype=data.dtype))
    data = data.rechunk((1, -1, -1))

    def write(temporary):
        array = zarr.open_array(temporary, mode="w", shape=data.shape, chunks=(1, *data.shape[1:]), dtype=data.dtype)
        sink = _Sink(array)
        try:
            da.store(data, sink, lock=False)
        except BaseException:
            sink.close()  # frames still being computed must not write into the directory once removed
            raise
        array.attrs[ATTRIBUTE] = attributes

    return write_atomically(path, write, check_existing=lambda target: _check_replaceable(target, overwrite))


def read_cube_store(path):
    """
    Read a store written by `write_cube_store`; the data stay lazy (one Dask chunk per frame).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    `StoredCube`

    Raises
    ------
    FileNotFoundError
        If there is no store at ``path``.
    ValueError
        If the store was not written by `write_cube_store`.

    Warns
    -----
    ~sunpy_timelag.exceptions.InterruptedWriteWarning
        If a write of ``path`` was interrupted: what it left is resolved first.
    """
    _zarr()
    recover(path)
    if not os.path.lexists(path):
        raise FileNotFoundError(f"no Zarr store at {path}")
    array, attributes = _open_store(path)
    if attributes is None:
        raise ValueError(f"{path} is not a cube store written by sunpy_timelag (format {FORMAT})")
    times = attributes["time"]
    time = Time(np.array(times["jd1"]), np.array(times["jd2"]), format="jd", scale=times["scale"])
    time.format = times["format"]
    wcs_items = attributes["celestial_wcs"]
    celestial_wcs = WCS(fits.Header.fromstring(wcs_items["header"]))
    for key in ("crpix", "cdelt", "crval", "pc"):
        setattr(celestial_wcs.wcs, key, wcs_items[key])
    celestial_wcs.wcs.set()
    celestial_wcs.pixel_shape = array.shape[:0:-1]
    wavelength, unit = attributes["wavelength"], attributes["unit"]
    return StoredCube(
        data=da.from_zarr(array, chunks=(1, *array.shape[1:])),
        time=time,
        headers=tuple(dict(items) for items in attributes["headers"]),
        exposure_time=u.Quantity(*attributes["exposure_time"]),
        wavelength=None if wavelength is None else u.Quantity(*wavelength),
        unit=None if unit is None else u.Unit(unit),
        celestial_wcs=celestial_wcs,
    )


def _zarr():
    try:
        import zarr
    except ImportError as error:
        raise ImportError("persisting a cube needs zarr: pip install 'zarr>=2.16'") from error
    return zarr


class _Sink:
    """
    A write target for `dask.array.store` that can be closed: `close` waits for the writes under way
    and drops later ones (a failed computation leaves other frames running in the scheduler's threads).
    In another process (a distributed worker) it is the plain Zarr array.
    """

    def __init__(self, array):
        self.array, self.shape, self.dtype, self.ndim = array, array.shape, array.dtype, len(array.shape)
        self._closed, self._writing, self._condition = False, 0, threading.Condition()

    def __setitem__(self, key, value):
        with self._condition:
            if self._closed:
                return
            self._writing += 1
        try:
            self.array[key] = value
        finally:
            with self._condition:
                self._writing -= 1
                self._condition.notify_all()

    def close(self):
        with self._condition:
            self._closed = True
            self._condition.wait_for(lambda: self._writing == 0)

    def __reduce__(self):
        return _plain_array, (self.array,)


def _plain_array(array):
    return array


def _open_store(path):
    """The Zarr array at ``path`` and its sunpy_timelag attributes, or ``(None, None)`` if it is not such a store."""
    try:
        array = _zarr().open_array(str(path), mode="r")
        document = array.attrs.get(ATTRIBUTE)
        attributes = json.loads(document) if isinstance(document, str) else {}
    except (OSError, ValueError, KeyError):  # not a Zarr array, or unreadable metadata
        return None, None
    return (array, attributes) if attributes.get("format") == FORMAT else (None, None)


def _check_replaceable(path, overwrite):
    """Refuse to replace what is at ``path`` unless it is a store this module wrote (or an empty folder)."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
        return  # an empty folder holds nothing to lose
    if _open_store(path)[1] is None:
        kind, remove = ("folder", "shutil.rmtree") if path.is_dir() else ("file", "os.remove")
        raise OutputPathError(
            f"{path} is a {kind} but not a cube store written by sunpy_timelag: it is never replaced, to never "
            f"delete other data; choose another path, or remove it yourself first ({remove}) if it should go"
        )
    if not overwrite:
        raise FileExistsError(f"{path} exists: pass overwrite=True to replace it")


def _header_items(header):
    """A header as ``[key, value]`` pairs (FITS commentary cards as one string of lines, as sunpy has them)."""
    return [[key, str(value) if isinstance(value, fits.header._HeaderCommentaryCards) else value]
            for key, value in dict(header).items() if key]


def _quantity(quantity):
    return [np.asarray(quantity.value).tolist(), quantity.unit.to_string()]


def _json_value(value):
    """JSON form of header values that are not plain Python: NumPy scalars; FITS's undefined value."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, fits.card.Undefined):
        return None
    return str(value)

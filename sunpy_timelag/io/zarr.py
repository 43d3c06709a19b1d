"""
Persistence of a cube as a Zarr store, written atomically.

The store is one Zarr array, ``(n_time, ny, nx)`` in chunks of one frame, whose attribute
``"sunpy_timelag"`` holds (as one JSON document) everything else a cube is made of: the frames' times
(two-part Julian dates, exact), headers and exposure times, the channel, the unit and the celestial
WCS (its FITS header plus the exact reference pixel, scale, reference value and ``PCi_j``). Floats go
through JSON unchanged (``repr`` round-trips), so reading a store gives back the same numbers.

Writing goes to a temporary directory beside the target that is renamed into place only once the
data and metadata are complete: a crash or an error leaves either the previous store or none, never
half a store. Zarr (2.16 or later) is an optional dependency of `sunpy_timelag`.
"""
import json
import os
import shutil
import tempfile
import threading
import uuid
from pathlib import Path
from typing import NamedTuple

import astropy.units as u
import dask.array as da
import numpy as np
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS

from ..backend import is_cupy_array, to_numpy

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
        Replace an existing store (it stays untouched if writing fails).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    ImportError
        If zarr is not installed.
    """
    zarr = _zarr()
    target = Path(path)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists: pass overwrite=True to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
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
    temporary = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-", suffix=".partial"))
    sink = None
    try:
        array = zarr.open_array(str(temporary), mode="w", shape=data.shape, chunks=(1, *data.shape[1:]),
                                dtype=data.dtype)
        sink = _Sink(array)
        da.store(data, sink, lock=False)
        array.attrs[ATTRIBUTE] = attributes
        _move_into_place(temporary, target)
    except BaseException:
        if sink is not None:
            sink.close()  # frames still being computed must not write into the directory once removed
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return target


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
    """
    zarr = _zarr()
    if not Path(path).exists():
        raise FileNotFoundError(f"no Zarr store at {path}")
    array = zarr.open_array(str(path), mode="r")
    document = array.attrs.get(ATTRIBUTE)
    attributes = json.loads(document) if isinstance(document, str) else {}
    if attributes.get("format") != FORMAT:
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


def _move_into_place(temporary, target):
    """Rename the finished store to ``target``; an old store there is moved aside first, then removed."""
    if not target.exists():
        os.rename(temporary, target)
        return
    old = target.with_name(f".{target.name}-{uuid.uuid4().hex}.old")
    os.rename(target, old)
    os.rename(temporary, target)
    shutil.rmtree(old, ignore_errors=True)


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

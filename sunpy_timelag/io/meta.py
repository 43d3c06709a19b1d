"""
Per-frame metadata of a cube that follows it through slicing and rebinning.

The frames' headers are one table (`FrameHeaders`), a row per frame and a column per keyword, as
dkist keeps ``meta["headers"]``: a few KB per frame where a full `astropy.io.fits.Header` holds about
100 KB. A frame's header becomes a `~sunpy.util.metadata.MetaDict` only where it is asked for (to
build a Map).
"""
from collections.abc import Sequence

import astropy.units as u
import numpy as np
from astropy.table import Column, MaskedColumn, Table
from sunpy.util.metadata import MetaDict

from .headers import header_row
from .wcs import resample_celestial_wcs

__all__ = ["FrameMeta", "FrameHeaders"]

#: The array axes of a full cube, in order.
CUBE_AXES = ("time", "y", "x")

#: Marks a keyword absent from a frame while the table is built.
_ABSENT = object()


class FrameHeaders(Sequence):
    """
    The headers of a cube's frames, held as one table: a row per frame, a column per keyword.

    An immutable sequence of headers: ``headers[i]`` is frame ``i``'s header, a
    `~sunpy.util.metadata.MetaDict` built on demand (keywords case-insensitive, as sunpy's Maps take
    them); a slice, an integer array or a boolean mask gives the `FrameHeaders` of those frames;
    ``len``, iteration and ``==`` (with another `FrameHeaders` or a sequence of dict-like headers,
    keyword by keyword, NaN equal to NaN) work as on a tuple of headers. ``table`` is the
    `astropy.table.Table` itself, as a `dkist.Dataset` gives its ``headers``, and `column` one
    keyword's values in every frame.

    The table holds what `~sunpy_timelag.io.headers.header_row` makes of each header. Its column
    names are the upper-case keywords. A column of `bool`, of integers, or of numbers is a NumPy
    array of that type (``int64``, ``float64``: a keyword that is an integer in some frames and a
    float in others is a float); any other column (strings, `None`, values of mixed types) is an
    object array in which equal values are one object, so that a keyword with the same text in
    every frame costs a pointer per frame. A keyword absent from some frames is a masked column,
    and absent from that frame's header. The commentary cards (``COMMENT``, ``HISTORY``) are a
    string column like any other: each frame's lines, joined by newlines. Treat the table as
    read-only.

    Parameters
    ----------
    table : `astropy.table.Table`
        One row per frame; build one with `from_headers` or `from_table`.
    length : int, optional
        The number of frames, needed only when ``table`` has no columns (headers without keywords).
    """

    def __init__(self, table, length=None):
        self._table = table
        self._length = len(table) if table.colnames or length is None else int(length)

    @classmethod
    def from_headers(cls, headers):
        """
        The table of a sequence of headers.

        Each header is read (`~sunpy_timelag.io.headers.header_row`) as it comes, into one list
        per keyword, so an iterator of headers is never held whole; a `FrameHeaders` is returned
        as it is.

        Parameters
        ----------
        headers : iterable of `astropy.io.fits.Header` or dict-like

        Returns
        -------
        `FrameHeaders`
        """
        if isinstance(headers, FrameHeaders):
            return headers
        return cls.from_rows(header_row(header) for header in headers)

    @classmethod
    def from_rows(cls, rows):
        """
        The table of header rows as `~sunpy_timelag.io.headers.header_row` makes them, taken as they are.

        Parameters
        ----------
        rows : iterable of dict
            Upper-case keyword -> plain value (`str`, `int`, `float`, `bool`, `None`, ...).

        Returns
        -------
        `FrameHeaders`
        """
        values = {}
        n = 0
        for n, row in enumerate(rows, start=1):
            for keyword, value in row.items():
                values.setdefault(keyword, [_ABSENT] * (n - 1)).append(value)
            if len(values) > len(row):  # keywords of earlier frames that this one lacks
                for column in values.values():
                    if len(column) < n:
                        column.append(_ABSENT)
        return cls(Table({keyword: _column(column) for keyword, column in values.items()}), length=n)

    @classmethod
    def from_table(cls, table):
        """
        Headers from a table with a row per frame and a column per keyword, as a `dkist.Dataset` has them.

        The table is not copied; its column names are read as keywords (case-insensitive).

        Parameters
        ----------
        table : `astropy.table.Table`

        Returns
        -------
        `FrameHeaders`
        """
        table = Table(table, copy=False)
        table.rename_columns(table.colnames, [name.upper() for name in table.colnames])
        return cls(table)

    @property
    def table(self):
        """`astropy.table.Table`: the headers, a row per frame and a column per keyword (read-only)."""
        return self._table

    @property
    def keywords(self):
        """tuple of str: the keywords of any frame (the table's columns), upper case."""
        return tuple(self._table.colnames)

    def column(self, keyword):
        """
        The value of one keyword in every frame.

        Parameters
        ----------
        keyword : str
            Case-insensitive.

        Returns
        -------
        numpy.ndarray
            A copy, one value per frame (an object array for strings); a `numpy.ma.MaskedArray`
            masking the frames without the keyword, if some have it and others not.

        Raises
        ------
        KeyError
            If no frame has the keyword.
        """
        name = keyword.upper()
        if name not in self._table.colnames or np.ma.getmaskarray(self._table[name]).all():
            raise KeyError(f"no frame's header has the keyword {keyword!r}")
        column = self._table[name]
        if np.ma.is_masked(column):
            return np.ma.array(column, copy=True)
        return np.array(column)

    def updated(self, values, remove=()):
        """
        These headers with keywords removed and others set, in every frame.

        Parameters
        ----------
        values : dict
            Keyword -> value: one value for every frame, or a sequence (array) of one per frame;
            `None` removes the keyword. Keywords are case-insensitive.
        remove : iterable of str, optional
            Keywords to remove first (those of ``values`` are then set).

        Returns
        -------
        `FrameHeaders`
        """
        n = len(self)
        table = self._table.copy(copy_data=False)
        gone = {key.upper() for key in remove} | {key.upper() for key, value in values.items() if value is None}
        table.remove_columns([name for name in table.colnames if name in gone])
        for key, value in values.items():
            if value is not None:
                per_frame = [_plain(v) for v in value] if np.ndim(value) else [_plain(value)] * n
                if len(per_frame) != n:
                    raise ValueError(f"{key} has {len(per_frame)} values for {n} frames")
                table[key.upper()] = _column(per_frame)
        return type(self)(table, length=n)

    def __len__(self):
        return self._length

    def __getitem__(self, index):
        if isinstance(index, int | np.integer):
            return MetaDict(self._row(range(len(self))[index]))
        if isinstance(index, slice) and range(len(self))[index] == range(len(self)):
            return self
        return type(self)(self._table[index], length=np.arange(len(self))[index].size)

    def __iter__(self):
        for i in range(len(self)):
            yield MetaDict(self._row(i))

    def __eq__(self, other):
        if other is self:
            return True
        if isinstance(other, FrameHeaders):
            rows = (other._row(i) for i in range(len(other)))
        elif isinstance(other, Sequence) and all(hasattr(header, "items") for header in other):
            rows = (header_row(header) for header in other)
        else:
            return NotImplemented
        return len(self) == len(other) and all(
            _same_row(self._row(i), row) for i, row in enumerate(rows))

    __hash__ = None

    def __repr__(self):
        return f"<{type(self).__name__}: {len(self)} frames, {len(self._table.colnames)} keywords>"

    def _row(self, i):
        """Frame ``i``'s header as a plain dict (upper-case keywords, Python values)."""
        row = {}
        for name, column in self._table.columns.items():
            value = column[i]
            if value is not np.ma.masked:
                row[name] = _plain(value)
        return row


class FrameMeta(dict):
    """
    Cube metadata: global entries plus the per-frame ``headers`` and ``exposure_time``.

    It follows ndcube's axis-aware metadata protocol (``__ndcube_can_slice__`` and
    ``__ndcube_can_rebin__``), so slicing, cropping and rebinning a cube keep one header
    and one exposure time per frame, and the 2-D ``celestial_wcs`` of the pixels the cube
    holds (bin centres and scaled ``CDELT`` after rebinning). ``axes`` names the cube's
    array axes that remain (``"time"``, ``"y"``, ``"x"``): a cube of one frame (its time
    axis sliced away by an integer) has a scalar ``exposure_time`` and one header. Values
    are treated as immutable, so copies are shallow: copying a cube over thousands of
    frames does not copy thousands of headers.

    Parameters
    ----------
    *args, **kwargs
        As for `dict`. ``headers`` (a `FrameHeaders`; a sequence of dict-like headers is made
        one) and ``exposure_time`` (a `~astropy.units.Quantity` array) hold one entry per frame;
        ``celestial_wcs`` is the 2-D `astropy.wcs.WCS` of the cube's pixels; ``axes`` defaults
        to `CUBE_AXES`.
    """

    __ndcube_can_slice__ = True
    __ndcube_can_rebin__ = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "headers" in self:
            self["headers"] = FrameHeaders.from_headers(self["headers"])

    def __deepcopy__(self, memo):
        return type(self)(self)

    @property
    def axes(self):
        """tuple of str: the cube's remaining array axes, among ``("time", "y", "x")``."""
        return self.get("axes", CUBE_AXES)

    @property
    def slice(self):
        """Index with the cube's (per-axis) slicing item: ``meta.slice[item]``."""
        return _FrameMetaSlicer(self)

    def rebin(self, bin_shape, operation=np.mean):
        """
        Metadata of the cube rebinned by ``bin_shape`` (one factor per remaining array axis).

        A bin of frames keeps the header of its first frame; its exposure time is
        ``operation`` (the operation combining the data) of the frames' exposure times,
        so that dividing the rebinned data by it gives the rate. The celestial WCS
        describes the bins: their centres, and ``CDELT`` times the factors.
        """
        factors = dict(zip(self.axes, (int(f) for f in bin_shape), strict=True))
        new = type(self)(self, celestial_wcs=resample_celestial_wcs(
            self["celestial_wcs"], slice(None, None, factors.get("y", 1)), slice(None, None, factors.get("x", 1))))
        factor = factors.get("time", 1)
        if factor > 1:
            n_bins = len(self["headers"]) // factor
            exposure = self["exposure_time"][: n_bins * factor].reshape(n_bins, factor)
            new["headers"] = self["headers"][: n_bins * factor : factor]
            new["exposure_time"] = u.Quantity(operation(exposure.value, axis=1), exposure.unit)
        return new


class _FrameMetaSlicer:
    def __init__(self, meta):
        self.meta = meta

    def __getitem__(self, item):
        meta, axes = self.meta, self.meta.axes
        item = item if isinstance(item, tuple) else (item,)
        items = dict(zip(axes, item + (slice(None),) * (len(axes) - len(item)), strict=True))
        dropped = {axis for axis, index in items.items() if isinstance(index, int | np.integer)}
        new = type(meta)(meta, axes=tuple(axis for axis in axes if axis not in dropped))
        if "time" in items:
            time = items["time"]
            new["headers"] = meta["headers"][time if isinstance(time, slice) else np.atleast_1d(time)]
            new["exposure_time"] = meta["exposure_time"][items["time"]]
        spatial = [_as_slice(items.get(axis, slice(None))) for axis in ("y", "x")]
        new["celestial_wcs"] = resample_celestial_wcs(meta["celestial_wcs"], *spatial)
        return new


def _as_slice(index):
    """An integer index as the slice of length one that keeps the axis (the WCS stays 2-D)."""
    return slice(index, index + 1) if isinstance(index, int | np.integer) else index


def _plain(value):
    """A table value as a Python value (NumPy scalars as Python's)."""
    return value.item() if isinstance(value, np.generic) else value


def _column(values):
    """
    One keyword's values (`_ABSENT` where a frame lacks it) as a column: a typed NumPy column for
    booleans, integers or numbers, else an object column of shared equal values; masked where absent.
    """
    present = [value for value in values if value is not _ABSENT]
    kinds = {type(value) for value in present}
    if kinds == {bool}:
        dtype, fill = bool, False
    elif kinds == {int} and all(-(2**63) <= value < 2**63 for value in present):
        dtype, fill = np.int64, 0
    elif kinds == {int, float} and all(type(value) is float or abs(value) <= 2**53 for value in present) \
            or kinds == {float}:
        dtype, fill = np.float64, 0.0
    else:
        dtype, fill = object, None
        values = _shared(values)
    data = np.empty(len(values), dtype=dtype)
    for i, value in enumerate(values):  # item by item: a value may itself be a sequence
        data[i] = fill if value is _ABSENT else value
    if len(present) == len(values):
        return Column(data)
    return MaskedColumn(data, mask=[value is _ABSENT for value in values])


def _shared(values):
    """``values`` with equal values (of the same type) as one object: a repeated string is held once."""
    seen, previous, shared = {}, _ABSENT, []
    for value in values:
        try:
            value = seen.setdefault((type(value), value), value)
        except TypeError:  # unhashable (a dict of key comments): shared with the previous value if equal
            value = previous if type(previous) is type(value) and previous == value else value
        shared.append(value)
        previous = value
    return shared


def _same_row(first, second):
    """Two header rows hold the same keywords and values (NaN equal to NaN)."""
    return first.keys() == second.keys() and all(_same_value(first[key], second[key]) for key in first)


def _same_value(first, second):
    if isinstance(first, float) and isinstance(second, float) and first != first and second != second:
        return True
    return bool(first == second)

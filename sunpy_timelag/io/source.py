"""
The files behind a cube's data: reads of only the pixels a region needs, in the chunks the analysis needs.

A cube built by `~sunpy_timelag.TimelagCube.from_files` remembers, as a `FileSource`, the file of each
frame and what has been done to the frames since: a window (slicing, ``submap``, ``crop``), a division
by one number per frame (``normalize_exposure``) and spatial binning (``rebin``). Its Dask array can then
be rebuilt from the files so that each task reads only its window — one range read of the rows spanned
in an uncompressed image, only the tiles touched in a tile-compressed one — and in either layout: one
chunk per frame (for frame-by-frame steps) or whole time series over blocks of pixels (for the time-lag
analysis, each task reading its band from every file) without a rechunk. Rebuilt arrays hold the same
numbers as the operations applied to the whole frames.
"""
from dataclasses import dataclass, replace

import dask.array as da
import numpy as np
from dask.array.core import Array
from dask.base import tokenize

from ..lags import series_chunks

__all__ = ["FileSource"]

#: Frames read and scaled together by one task (`_read`).
_FRAMES_AT_ONCE = 64

@dataclass(frozen=True, eq=False)
class FileSource:
    """
    Frames read from files, windowed, divided by a number per frame and binned in space, in that history.

    Attributes
    ----------
    loaders : tuple of `~sunpy_timelag.io.loader.FITSFrameLoader`
        One per frame.
    window : tuple of int
        ``(row_start, row_stop, column_start, column_stop)`` in the files' pixels.
    operations : tuple
        ``("divide", values)`` (one value per frame) and ``("bin", (n_y, n_x), operation)`` steps, in
        the order applied; binning starts at the window's first pixel.
    dtype : numpy.dtype
        Of the result.
    """

    loaders: tuple
    window: tuple
    operations: tuple = ()
    dtype: np.dtype = None

    @classmethod
    def of_frames(cls, loaders):
        """The whole frames, as read."""
        ny, nx = loaders[0].shape
        return cls(tuple(loaders), (0, ny, 0, nx), (), np.dtype(loaders[0].dtype))

    @property
    def factors(self):
        """``(n_y, n_x)``: the binning of the window's pixels so far."""
        factors = np.ones(2, dtype=int)
        for operation in self.operations:
            if operation[0] == "bin":
                factors *= operation[1]
        return tuple(int(f) for f in factors)

    @property
    def shape(self):
        """``(n_frames, ny, nx)`` of the result."""
        y0, y1, x0, x1 = self.window
        fy, fx = self.factors
        return len(self.loaders), (y1 - y0) // fy, (x1 - x0) // fx

    def sliced(self, time_item, rows, columns):
        """
        The source of ``result[time_item, rows, columns]``.

        ``time_item`` is an integer array of frame indices; ``rows`` and ``columns`` are slices of
        step 1 (or integers) of the result's pixels.
        """
        fy, fx = self.factors
        (y0, _, x0, _), (_, ny, nx) = self.window, self.shape
        r, c = (range(n)[_as_slice(item)] for n, item in ((ny, rows), (nx, columns)))
        window = (y0 + r.start * fy, y0 + r.stop * fy, x0 + c.start * fx, x0 + c.stop * fx)
        operations = tuple((kind, np.asarray(values)[time_item]) if kind == "divide" else (kind, values, *rest)
                           for kind, values, *rest in self.operations)
        return replace(self, loaders=tuple(np.asarray(self.loaders, dtype=object)[time_item]), window=window,
                       operations=operations)

    def then(self, operation, dtype):
        """This source followed by ``operation`` (see ``operations``), giving ``dtype``."""
        return replace(self, operations=self.operations + (operation,), dtype=np.dtype(dtype))

    def frames(self):
        """
        The result as a Dask array of one chunk per frame, each task reading its frame's window.

        Returns
        -------
        dask.array.Array
        """
        n, ny, nx = self.shape
        name = "fits-window-" + tokenize(self._token())
        graph = {(name, i, 0, 0): (_read, self, [i], (0, ny), (0, nx)) for i in range(n)}
        return Array(graph, name, ((1,) * n, (ny,), (nx,)), dtype=self.dtype)

    def windows(self, origins, size):
        """
        One window of the same ``size`` per frame, each at its own origin: a Dask array of one chunk per frame.

        Parameters
        ----------
        origins : list of (int, int)
            First row and column of each frame's window, in the result's pixels.
        size : (int, int)
            Rows and columns of every window.

        Returns
        -------
        dask.array.Array
            ``(n_frames, *size)``.
        """
        origins = [(int(y), int(x)) for y, x in origins]
        name = "fits-windows-" + tokenize(self._token(), origins, size)
        graph = {(name, i, 0, 0): (_read, self, [i], (y, y + size[0]), (x, x + size[1]))
                 for i, (y, x) in enumerate(origins)}
        return Array(graph, name, ((1,) * len(origins), (size[0],), (size[1],)), dtype=self.dtype)

    def series(self):
        """
        The result as whole time series over bands of rows, each task reading its band from every file.

        The bands are those of `sunpy_timelag.lags.series_chunks` (whole rows: every byte read from an
        uncompressed file is used once), so that the array lines up with the analysis' other inputs.
        The reads are a blockwise layer: Dask fuses each band's read into the task that analyses it,
        so that a band is read where it is used and dropped with it.

        Returns
        -------
        dask.array.Array
        """
        chunks = series_chunks(self.shape, self.dtype)
        return da.map_blocks(_read_band, self, chunks=chunks, dtype=self.dtype, meta=np.empty((0, 0, 0), self.dtype),
                             name="fits-series-" + tokenize(self._token(), chunks))

    def _token(self):
        return ([loader.file.full_name for loader in self.loaders], self.window,
                [(kind, *rest) for kind, *rest in self.operations], str(self.dtype))


def _as_slice(item):
    return slice(item, item + 1) if isinstance(item, int | np.integer) else item


def _read_band(source, block_info=None):
    """The block of every frame at ``block_info[None]["array-location"]`` (see `FileSource.series`)."""
    _, rows, columns = block_info[None]["array-location"]
    return _read(source, range(len(source.loaders)), rows, columns)


def _read(source, frames, rows, columns):
    """Rows and columns (of the result's pixels) of the given frames of ``source``, as a ``(n, ny, nx)`` array."""
    fy, fx = source.factors
    y0, _, x0, _ = source.window
    raw_rows = slice(y0 + rows[0] * fy, y0 + rows[1] * fy)
    raw_columns = slice(x0 + columns[0] * fx, x0 + columns[1] * fx)
    frames = np.asarray(frames)
    out = np.empty((frames.size, rows[1] - rows[0], columns[1] - columns[0]), dtype=source.dtype)
    stored = {}  # raw dtype -> buffer of stored values, reused by every group
    for start in range(0, frames.size, _FRAMES_AT_ONCE):  # a few frames at a time: few NumPy calls, little memory
        group, target = frames[start : start + _FRAMES_AT_ONCE], out[start : start + _FRAMES_AT_ONCE]
        data = _read_frames([source.loaders[i] for i in group], raw_rows, raw_columns, stored, target)
        for kind, values, *rest in source.operations:
            if kind == "divide":  # in place: ``data`` is this function's own
                data = data.astype(np.result_type(data.dtype, np.float32), copy=False)
                data /= np.asarray(values)[group].astype(data.dtype)[:, None, None]
            else:
                (by, bx), operation = values, rest[0]
                n, ny, nx = data.shape[0], data.shape[1] // by, data.shape[2] // bx
                data = operation(data[:, : ny * by, : nx * bx].reshape(n, ny, by, nx, bx), axis=(2, 4))
        if data is not target:
            target[...] = data
    return out


def _read_frames(loaders, rows, columns, stored, target):
    """
    The window ``[rows, columns]`` of several frames, scaled, as a ``(n, n_rows, n_columns)`` array.

    Uncompressed frames stored alike are read into one buffer of stored values (``stored``, by raw
    dtype, reused from call to call) and scaled at once, into ``target`` where it fits.

    Work buffers and results are reused rather than allocated afresh: fresh memory costs a page fault
    per page on a `dask.distributed` worker, which returns freed memory to the system at once.
    """
    first = loaders[0]
    if not all(loader.offset is not None and (loader.raw_dtype, loader.scaling, loader.dtype) ==
               (first.raw_dtype, first.scaling, first.dtype) for loader in loaders):
        return np.stack([loader.read(rows, columns) for loader in loaders])
    shape = (len(loaders), rows.stop - rows.start, first.shape[1])
    buffer = stored.get(first.raw_dtype)
    if buffer is None or len(buffer) < len(loaders):
        buffer = stored[first.raw_dtype] = np.empty(shape, first.raw_dtype)
    buffer = buffer[: len(loaders)]
    for loader, frame in zip(loaders, buffer, strict=True):
        loader.read_stored(rows, out=frame)
    window = buffer[:, :, columns]
    fits_target = target.shape == window.shape and target.dtype == first.dtype
    return first.scale(window, out=target if fits_target else None)

"""
Lazy FITS frames: a loader per file that reads the window asked of it, at compute time.

`sunpy_timelag.io.source.FileSource` builds a cube's Dask array from these loaders.
"""
from contextlib import nullcontext

import dask.array as da
import numpy as np
from astropy.io import fits
from dask.array.core import Array
from fsspec.implementations.local import LocalFileSystem

__all__ = ["FITSFrameLoader", "stack_arrays"]


class FITSFrameLoader:
    """
    Read a window of the image of one FITS file (`read`).

    An uncompressed image is read as one block of bytes at its known offset (one
    range request on a remote file system) and scaled as astropy scales it
    (:math:`v = \\mathrm{BSCALE}\\,r + \\mathrm{BZERO}`, ``BLANK`` to NaN); a
    tile-compressed image is decompressed by astropy. The loader holds only the
    picklable `fsspec.core.OpenFile` and a few numbers, so it ships cheaply to
    `dask.distributed` workers.

    Parameters
    ----------
    file : `fsspec.core.OpenFile`
        The file to read.
    frame : `~sunpy_timelag.io.headers.FrameHeader`
        What the header scan found: HDU, shape, dtype and data offset.
    """

    def __init__(self, file, frame):
        self.file = file
        self.hdu = frame.hdu
        self.shape = frame.shape
        self.dtype = np.dtype(frame.dtype)
        self.offset = frame.data_offset
        header = frame.header
        self.raw_dtype = np.dtype(fits.hdu.base.BITPIX2DTYPE[header["BITPIX"]]).newbyteorder(">")
        self.scaling = (header.get("BSCALE", 1), header.get("BZERO", 0), header.get("BLANK"))

    def __repr__(self):
        return f"{type(self).__name__}({self.file.full_name!r}, hdu={self.hdu})"

    def read(self, rows=slice(None), columns=slice(None)):
        """
        The pixels ``[rows, columns]`` of the image, reading no more than they need.

        An uncompressed image is read as one range of bytes, the rows spanned; a tile-compressed one
        through astropy's `~astropy.io.fits.CompImageHDU.section`, which decompresses only the tiles
        the window touches. A local tile-compressed file is memory-mapped, so that only the pages of
        those tiles are read from disk; on other file systems astropy reads the whole compressed
        table (the heap of all tiles) and decompresses only the tiles touched.

        Parameters
        ----------
        rows, columns : slice
            Of step 1.

        Returns
        -------
        numpy.ndarray
            ``(n_rows, n_columns)``, of the frame's dtype.
        """
        ny, nx = self.shape
        rows, columns = slice(*rows.indices(ny)), slice(*columns.indices(nx))
        if self.offset is None:
            local = isinstance(self.file.fs, LocalFileSystem)
            with (nullcontext(self.file.path) if local else self.file) as stream, \
                    fits.open(stream, memmap=local, lazy_load_hdus=True, do_not_scale_image_data=True) as hdulist:
                raw = hdulist[self.hdu].section[rows, columns]  # astropy refuses to scale memory-mapped data
            return self.scale(raw)
        return self.scale(self.read_stored(rows)[:, columns])

    def read_stored(self, rows, out=None):
        """
        The stored values of whole rows of an uncompressed image, unscaled: one range of bytes.

        Parameters
        ----------
        rows : slice
            Of step 1.
        out : numpy.ndarray, optional
            C-contiguous, ``(n_rows, nx)`` of ``raw_dtype``, to read into.

        Returns
        -------
        numpy.ndarray
            ``out``, or a new array.
        """
        rows = slice(*rows.indices(self.shape[0]))
        if out is None:
            out = np.empty((rows.stop - rows.start, self.shape[1]), self.raw_dtype)
        # a local file unbuffered, without fsspec's opener: one read system call
        with (open(self.file.path, "rb", buffering=0) if isinstance(self.file.fs, LocalFileSystem) else self.file) \
                as stream:
            stream.seek(self.offset + rows.start * out.strides[0])
            size = stream.readinto(out.reshape(-1).view(np.uint8))
        if size != out.nbytes:
            raise OSError(f"{self.file.full_name} is truncated: {size} of {out.nbytes} bytes of image data")
        return out

    def scale(self, raw, out=None):
        """
        The stored values ``raw`` (any shape) as astropy scales them, in the frame's dtype.

        Written into ``out`` (of ``raw``'s shape and the frame's dtype) if given.
        """
        bscale, bzero, blank = self.scaling
        if out is None:
            out = np.empty(raw.shape, self.dtype)
        if self.dtype.kind in "iu":  # no scaling, or the FITS unsigned-integer convention
            out[...] = raw.astype(np.int64) + int(bzero) if bzero else raw
            return out
        out[...] = raw
        if bscale != 1 or bzero != 0:
            out *= self.dtype.type(bscale)
            out += self.dtype.type(bzero)
        if blank is not None and raw.dtype.kind in "iu":
            out[raw == blank] = np.nan
        return out


def stack_arrays(arrays):
    """
    Stack 2-D arrays (NumPy, or Dask with one chunk each) into a ``(n, ny, nx)`` Dask array.

    Like `dask.array.stack`, one chunk per array and no copy, but the graph is one
    layer rather than one per array: Dask's graph optimisation costs grow with the
    product of layers and tasks, which for thousands of frames is seconds per compute.

    Parameters
    ----------
    arrays : list of array-like

    Returns
    -------
    dask.array.Array
    """
    stacked = da.stack([da.asarray(array, chunks=array.shape) for array in arrays])
    return Array(dict(stacked.__dask_graph__()), stacked.name, stacked.chunks, meta=stacked._meta)

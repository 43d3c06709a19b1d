"""
Lazy FITS frames: one Dask chunk per file, read only at compute time.
"""
import dask.array as da
import numpy as np
from astropy.io import fits
from dask.array.core import Array
from dask.base import tokenize

__all__ = ["FITSFrameLoader", "stack_frames", "stack_arrays"]


class FITSFrameLoader:
    """
    Read the image of one FITS file, as a ``(1, ny, nx)`` array, when called.

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

    def __call__(self):
        with self.file as stream:
            if self.offset is None:
                return self._decompress(stream)[np.newaxis]
            stream.seek(self.offset)
            size = int(np.prod(self.shape)) * self.raw_dtype.itemsize
            buffer = stream.read(size)
        if len(buffer) != size:
            raise OSError(f"{self.file.full_name} is truncated: {len(buffer)} of {size} bytes of image data")
        return self._scale(np.frombuffer(buffer, dtype=self.raw_dtype).reshape(self.shape))[np.newaxis]

    def _decompress(self, stream):
        with fits.open(stream, memmap=False) as hdulist:
            return np.asarray(hdulist[self.hdu].data, dtype=self.dtype)

    def _scale(self, raw):
        bscale, bzero, blank = self.scaling
        if self.dtype.kind in "iu":  # no scaling, or the FITS unsigned-integer convention
            return (raw.astype(np.int64) + int(bzero)).astype(self.dtype) if bzero else raw.astype(self.dtype)
        data = raw.astype(self.dtype)
        if bscale != 1 or bzero != 0:
            data = data * self.dtype.type(bscale) + self.dtype.type(bzero)
            if blank is not None and raw.dtype.kind == "i":
                data[raw == blank] = np.nan
        return data


def stack_frames(loaders):
    """
    A Dask array of shape ``(n_frames, ny, nx)`` with one chunk per loader.

    Building the graph reads nothing: each chunk calls its loader at compute time.

    Parameters
    ----------
    loaders : list of `FITSFrameLoader`
        All with the same shape and dtype.

    Returns
    -------
    dask.array.Array
    """
    shape, dtype = loaders[0].shape, loaders[0].dtype
    name = "fits-frames-" + tokenize([loader.file.full_name for loader in loaders], shape, dtype)
    graph = {(name, index, 0, 0): (loader,) for index, loader in enumerate(loaders)}
    chunks = ((1,) * len(loaders), (shape[0],), (shape[1],))
    return Array(graph, name, chunks, dtype=dtype)


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

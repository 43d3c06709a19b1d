"""
Lazy FITS frames: one Dask chunk per file, read only at compute time.
"""
import numpy as np
from astropy.io import fits
from dask.array.core import Array
from dask.base import tokenize

__all__ = ["FITSFrameLoader", "stack_frames"]


class FITSFrameLoader:
    """
    Read the image of one FITS file, as a ``(1, ny, nx)`` array, when called.

    The loader holds only the (picklable) `fsspec.core.OpenFile`, the HDU index and the
    expected shape and dtype, so it can be shipped to `dask.distributed` workers.

    Parameters
    ----------
    file : `fsspec.core.OpenFile`
        The file to read.
    hdu : int
        Index of the image HDU (``1`` for tile-compressed AIA files).
    shape : tuple of int
        Expected ``(ny, nx)`` shape of the image.
    dtype : numpy.dtype
        Dtype of the returned array (that of the scaled FITS data).
    """

    def __init__(self, file, hdu, shape, dtype):
        self.file = file
        self.hdu = hdu
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)

    def __repr__(self):
        return f"{type(self).__name__}({self.file.full_name!r}, hdu={self.hdu})"

    def __call__(self):
        with self.file as stream, fits.open(stream, memmap=False) as hdulist:
            data = hdulist[self.hdu].data
            if data is None or data.shape != self.shape:
                raise OSError(
                    f"{self.file.full_name}: expected a {self.shape} image in HDU {self.hdu}, "
                    f"found {None if data is None else data.shape}"
                )
            return np.asarray(data, dtype=self.dtype)[np.newaxis]


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

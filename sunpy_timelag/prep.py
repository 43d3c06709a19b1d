"""
Instrument preparation of a `~sunpy_timelag.TimelagCube`, frame by frame and lazily, and its persistence.

The physically right order is that of `PrepMixin.prepare`: PSF deconvolution of the level-1 frames,
registration to level 1.5, exposure normalisation, and cropping (``submap``) last. Each step maps a
kernel of `sunpy_timelag.aia` over one-frame Dask chunks: nothing is read or computed before
``compute``, and CuPy chunks stay on the GPU from one step to the next. `PrepMixin.to_zarr` keeps a
prepared cube, so that the preparation is done once.
"""
import dask.array as da
import numpy as np

__all__ = ["PrepMixin"]


class PrepMixin:
    """Preparation steps of `~sunpy_timelag.TimelagCube` (PSF deconvolution, registration, persistence)."""

    def deconvolve(self, *, psf=None, iterations=25, clip_negative=True, dtype=np.float32):
        """
        Deconvolve every frame with the channel's PSF (Richardson-Lucy, as `aiapy.psf.deconvolve`), lazily.

        One `~sunpy_timelag.aia.Deconvolver` serves all frames: the PSF (by default
        ``sunpy_timelag.aia.psf`` of the cube's channel, cached) and its Fourier transform are
        computed once per process, where the first frame is deconvolved, and kept (on the GPU for
        CuPy chunks). Deconvolve the full level-1 frames: before `register`, and before cropping.

        Parameters
        ----------
        psf : numpy.ndarray or cupy.ndarray, optional
            The PSF; default the full-frame PSF of the cube's channel.
        iterations : int, optional
            Richardson-Lucy iterations.
        clip_negative : bool, optional
            Set negative pixels to 0 first.
        dtype : {numpy.float32, numpy.float64}, optional
            Working and output precision.

        Returns
        -------
        `~sunpy_timelag.TimelagCube`

        Raises
        ------
        ValueError
            If the frames are already registered (``LVL_NUM`` above 1): the PSF applies to level-1
            images; and the cases of `~sunpy_timelag.aia.Deconvolver`.
        """
        from .aia import Deconvolver

        if max(_level(header) for header in self.headers) > 1:
            raise ValueError("the frames are registered (level > 1): deconvolve the level-1 frames, before register()")
        deconvolver = Deconvolver(psf, channel=self.wavelength if psf is None else None, iterations=iterations,
                                  clip_negative=clip_negative, dtype=dtype)
        data = self.data.rechunk((1, -1, -1))
        return self._new_instance(data=data.map_blocks(deconvolver, dtype=deconvolver.dtype,
                                                       meta=da.utils.meta_from_array(data, dtype=deconvolver.dtype)))

    def register(self, *, missing=None, order=3):
        """
        Register every frame to level 1.5 (`sunpy_timelag.aia.register`), lazily.

        Each frame's transform comes from its own header (its pointing and roll), and every frame is
        put on the level-1.5 grid of the first, so that they share one celestial WCS: that of the
        registered first frame, which becomes the cube's, and each frame's header becomes its
        level-1.5 header. A frame is the frame `sunpy_timelag.aia.register` gives (aiapy's numbers);
        integer frames are registered as float32.

        Parameters
        ----------
        missing : float, optional
            Value of pixels outside a frame; default each frame's minimum (as aiapy).
        order : int, optional
            Order of the spline interpolation, 0 to 5.

        Returns
        -------
        `~sunpy_timelag.TimelagCube`

        Raises
        ------
        TypeError, ValueError
            As `sunpy_timelag.aia.register`, for the first frame (the others share its pointing to
            within the cube's tolerance); if the cube was cropped or rebinned in space (register the
            full frames, then crop); if the frames' reference coordinates (``CRVAL``) differ.
        """
        from .aia.register import Registration, check_level1_map
        from .maps import header_map

        _check_own_pixels(self)
        shape = self.data.shape[1:]
        maps = [header_map(header, shape) for header in self.headers]
        check_level1_map(maps[0])
        first = Registration.from_map(maps[0])
        registrations = [first] + [Registration.from_map(frame, grid=first) for frame in maps[1:]]
        _check_common_reference(registrations)
        frames = np.empty((len(registrations), 1, 1), dtype=object)
        frames[:, 0, 0] = registrations
        dtype = np.result_type(self.data.dtype, np.float32)
        data = da.map_blocks(
            _register_frame, self.data.rechunk((1, -1, -1)), da.from_array(frames, chunks=1, name=False),
            missing=missing, order=order, dtype=dtype,
            chunks=((1,) * len(registrations), (first.shape[0],), (first.shape[1],)),
            meta=da.utils.meta_from_array(self.data, dtype=dtype),
        )
        headers = [registration.meta for registration in registrations]
        return type(self)._from_headers(data, headers, self.time, exposure_time=self.exposure_time, unit=self.unit)

    def prepare(self, *, deconvolve=False, iterations=25, missing=None, order=3):
        """
        Level 1 to level 1.5 in the physically right order: (deconvolve,) register, normalise exposure.

        Crop afterwards (``submap``), and persist the result (`to_zarr`) to prepare once.

        Parameters
        ----------
        deconvolve : bool, optional
            Deconvolve the level-1 frames with the channel's PSF first (`deconvolve`).
        iterations : int, optional
            Richardson-Lucy iterations.
        missing, order
            See `register`.

        Returns
        -------
        `~sunpy_timelag.TimelagCube`
            In DN/s (the unit divided by seconds).
        """
        cube = self.deconvolve(iterations=iterations) if deconvolve else self
        return cube.register(missing=missing, order=order).normalize_exposure()

    def to_zarr(self, path, *, overwrite=False):
        """
        Write the cube (computing it, frame by frame) to a Zarr store, atomically.

        The store keeps the data and everything `from_zarr` needs to rebuild the cube: times,
        headers, exposure times, channel, unit and celestial WCS. It appears at ``path`` only once
        complete (see `sunpy_timelag.io.zarr`). Needs zarr.

        Parameters
        ----------
        path : str or os.PathLike
            A local directory.
        overwrite : bool, optional
            Replace an existing store.

        Returns
        -------
        pathlib.Path
        """
        from .io.zarr import write_cube_store

        return write_cube_store(path, self.data, time=self.time, headers=self.headers,
                                exposure_time=self.exposure_time, wavelength=self.wavelength, unit=self.unit,
                                celestial_wcs=self.celestial_wcs, overwrite=overwrite)

    @classmethod
    def from_zarr(cls, path):
        """
        A cube from a store written by `to_zarr`: the same data (lazy, one chunk per frame),
        coordinates and metadata (headers as `~sunpy.util.metadata.MetaDict`).

        Parameters
        ----------
        path : str or os.PathLike

        Returns
        -------
        `~sunpy_timelag.TimelagCube`
        """
        from sunpy.util.metadata import MetaDict

        from .io.zarr import read_cube_store
        from .maps import header_map

        stored = read_cube_store(path)
        headers = [MetaDict(header) for header in stored.headers]
        frame = header_map(headers[0], stored.data.shape[1:]).coordinate_frame
        return cls._from_frames(stored.data, headers, stored.time, celestial_wcs=stored.celestial_wcs, frame=frame,
                                wavelength=stored.wavelength, unit=stored.unit, exposure_time=stored.exposure_time)


def _register_frame(block, frames, *, missing, order):
    """Register the one frame of a ``(1, ny, nx)`` block with its `Registration` (a ``(1, 1, 1)`` object block)."""
    image = block[0].astype(np.result_type(block.dtype, np.float32), copy=False)
    return frames.item()(image, missing=missing, order=order)[np.newaxis]


def _level(header):
    """The processing level of a frame (``LVL_NUM``; 1 if absent)."""
    return float(header.get("LVL_NUM") or 1)


def _check_own_pixels(cube):
    """
    Refuse a cube whose pixels are not those its frames' headers describe: cropped or rebinned in
    space since it was built (either changes its shape).
    """
    ny, nx = cube.data.shape[1:]
    header = cube.headers[0]
    if (header.get("NAXIS1", nx), header.get("NAXIS2", ny)) != (nx, ny):
        raise ValueError("register() needs the frames' own pixels, as their headers describe them: register the "
                         "full frames first, then crop (submap) or rebin")


def _check_common_reference(registrations):
    """Refuse frames whose reference coordinates differ: they would not share a level-1.5 grid."""
    first = registrations[0].meta
    tolerance = 1e-3 * abs(first["cdelt1"])  # a thousandth of a pixel
    for registration in registrations[1:]:
        meta = registration.meta
        if abs(meta["crval1"] - first["crval1"]) > tolerance or abs(meta["crval2"] - first["crval2"]) > tolerance:
            raise ValueError(f"frames with different reference coordinates (CRVAL: {first['crval1']}, "
                             f"{first['crval2']} and {meta['crval1']}, {meta['crval2']}) do not share a "
                             "level-1.5 grid: register them separately")

"""
`TimelagCube`: a lazy, coordinate-aware (time, y, x) cube of one imaging channel.
"""
import weakref

import astropy.units as u
import dask.array as da
import numpy as np
import sunpy.map
from astropy.table import Table
from ndcube import NDCube
from sunpy.map.header_helper import get_observer_meta

from . import analysis, lags
from .backend import array_module
from .io.files import resolve_files
from .io.headers import (
    check_frames,
    frame_exposures,
    frame_times,
    naming_unreadable_headers,
    scan_headers,
    select_quality,
)
from .io.loader import FITSFrameLoader, stack_arrays
from .io.meta import FrameHeaders, FrameMeta
from .io.source import FileSource
from .io.wcs import tangent_plane_wcs, timelag_wcs
from .maps import _WCS_KEYWORDS, celestial_header, frame_header, header_map, view_map
from .prep import PrepMixin

__all__ = ["TimelagCube"]


class TimelagCube(PrepMixin, NDCube):
    """
    A ``(time, y, x)`` cube of one channel over lazy Dask data, with a 3-D WCS.

    The WCS maps pixel ``(x, y, t)`` to a helioprojective `~astropy.coordinates.SkyCoord`
    and an `~astropy.time.Time`, the time axis tabulating the frames' own observation
    times (any cadence). Slicing, `~ndcube.NDCube.crop`, `submap` and `rebin` return
    TimelagCubes with the right coordinates and keep one header and one exposure time
    per frame.

    Build one with `from_files`, `from_maps` or `from_ndcube` rather than directly.

    Parameters
    ----------
    data : dask.array.Array
        ``(n_time, ny, nx)``.
    wcs : APE-14 WCS
        3-D WCS, pixel axes ``(x, y, t)``.
    meta : `~sunpy_timelag.io.meta.FrameMeta`
        ``headers`` and ``exposure_time`` per frame, ``wavelength`` and the reference
        ``celestial_wcs`` of the frames.
    **kwargs
        Passed to `ndcube.NDCube`.
    """

    # ---- construction -------------------------------------------------------------------------

    @classmethod
    def from_files(cls, paths, *, hdu=None, pointing_tolerance=1.0, quality="exclude", max_workers=None):
        """
        A lazy cube over many FITS files, one image per file.

        Only the headers are read (the header blocks alone, in threads for remote files); each
        file becomes one chunk of the Dask array, read at compute time, and the time-lag analysis
        reads whole time series over bands of pixels straight from the files (only the window a
        region needs). Frames are sorted by their mid-exposure time
        (``T_OBS``, else ``DATE-AVG``, else ``DATE-OBS`` + ``EXPTIME`` / 2; see
        `~sunpy_timelag.io.headers.frame_times`).

        Parameters
        ----------
        paths : str, os.PathLike or list of these
            A glob, a path, an fsspec URL (``file://``, ``memory://``, ``s3://``, ...) or a
            list of them (`fsspec.core.OpenFile` objects included). ``memory://`` files exist
            only in the process that wrote them: such a cube computes with threads (Dask's
            default scheduler), not on a ``dask.distributed`` cluster of processes, whose
            workers would not find them (`FileNotFoundError`).
        hdu : int, optional
            Index of the image HDU; by default the first 2-D image (HDU 1 of a
            tile-compressed AIA file).
        pointing_tolerance : float
            Largest pointing difference between frames, in pixels, anywhere in the field
            of view. The cube uses the celestial WCS of its first frame.
        quality : {"exclude", "keep"}
            What to do with frames flagged in AIA's ``QUALITY`` keyword (not 0: missing or
            corrupt data, eclipse, calibration, ...; aiapy's ``check_quality_flag`` names the
            bits): ``"exclude"`` leaves them out of the cube, as missing frames, with a
            `~sunpy_timelag.lags.TimelagWarning` naming how many, the first few and their
            flags' meanings; ``"keep"`` keeps them. See
            `~sunpy_timelag.io.headers.select_quality`.
        max_workers : int, optional
            Threads reading headers; default one for local and ``memory://`` files (the parsing
            holds Python's lock) and ``min(32, 4 * cores)`` for other file systems, where waiting
            on the network dominates.

        Returns
        -------
        `TimelagCube`

        Raises
        ------
        FileNotFoundError
            Empty glob or missing file.
        IsADirectoryError
            A folder given as a path.
        ~sunpy_timelag.exceptions.InputFileError
            A file that is not FITS, is compressed as a whole, has no image (at ``hdu``), is
            truncated, or has an unreadable header.
        ValueError
            Frames of different shape, dtype, channel or pointing, without observation
            time, with duplicate times, or mixing start and mid-exposure times; a
            ``QUALITY`` that is not an integer, or every frame flagged (and excluded).

        Warns
        -----
        ~sunpy_timelag.lags.TimelagWarning
            When frames flagged in ``QUALITY`` are left out.
        """
        files = resolve_files(paths)
        frames = scan_headers(files, hdu=hdu, max_workers=max_workers)
        headers = [frame.header for frame in frames]
        names = [frame.name for frame in frames]
        keep = select_quality(headers, names, quality)
        if not keep.all():  # flagged frames are left out, as missing ones
            files, frames = ([x for x, k in zip(items, keep, strict=True) if k] for items in (files, frames))
            headers = [frame.header for frame in frames]
            names = [frame.name for frame in frames]
        times = frame_times(headers, names)
        check_frames(headers, [frame.shape for frame in frames], [frame.dtype for frame in frames], names, times,
                     pointing_tolerance)
        order = times.argsort()
        loaders = [FITSFrameLoader(files[i], frames[i]) for i in order]
        del frames
        headers = FrameHeaders.from_rows(headers[i] for i in order)
        with naming_unreadable_headers(names, first=names[order[0]]):
            source = FileSource.of_frames(loaders)
            return cls._from_headers(source.frames(), headers, times[order], source=source)

    @classmethod
    def from_maps(cls, maps, *, pointing_tolerance=1.0):
        """
        A cube from sunpy Maps of one channel, sorted by time (see `from_files`).

        Maps of NumPy data are copied once, in time order, into one array held as whole time
        series over bands of rows (the chunks of `sunpy_timelag.lags.series_chunks`): the layout
        of the time-lag analysis, which then needs no rechunk. Maps of Dask data stay lazy, one
        chunk per frame.

        Parameters
        ----------
        maps : list of `~sunpy.map.GenericMap` or `~sunpy.map.MapSequence`
        pointing_tolerance : float
            See `from_files`.

        Returns
        -------
        `TimelagCube`

        Raises
        ------
        ValueError
            If ``maps`` is empty, or maps differ in shape, dtype, channel or pointing, have no
            observation time or the same one; messages name a map by its index in ``maps``.
        """
        maps = list(maps)
        if not maps:
            raise ValueError("maps is empty")
        headers = [m.meta for m in maps]
        names = [f"map {i}" for i in range(len(maps))]  # not `m.name`, which sunpy builds slowly
        times = frame_times(headers, names)
        arrays = [m.data for m in maps]
        check_frames(headers, [a.shape for a in arrays], [a.dtype for a in arrays], names, times, pointing_tolerance)
        order = times.argsort()
        if all(isinstance(a, np.ndarray) for a in arrays):
            stack = np.stack([arrays[i] for i in order])
            # a new array: named at random, not by a hash of its data (seconds for many large frames)
            data = da.from_array(stack, chunks=lags.series_chunks(stack.shape, stack.dtype), name=False)
        else:
            data = stack_arrays([arrays[i] for i in order])
        return cls._from_frames(data, [headers[i] for i in order], times[order], **_describe(maps[order[0]]))

    @classmethod
    def from_ndcube(cls, cube, *, wavelength=None, exposure_time=None):
        """
        A TimelagCube from any 3-D ``(time, y, x)`` `~ndcube.NDCube`, a `dkist.Dataset` included.

        The time axis must be the first array axis and the other two celestial. The
        time of each frame comes from the cube's WCS; the channel and exposure times
        from the keyword arguments, else from per-frame headers (``meta["headers"]``, a
        table as dkist keeps them) or the cube's ``meta`` (``WAVELNTH``, ``EXPTIME``).
        A non-FITS celestial WCS is represented by the TAN projection fitted to it.

        Parameters
        ----------
        cube : `~ndcube.NDCube`
        wavelength : `~astropy.units.Quantity`, optional
            The channel, if the metadata do not give it.
        exposure_time : `~astropy.units.Quantity`, optional
            Exposure time of every frame (scalar or one per frame), if the metadata do
            not give it.

        Returns
        -------
        `TimelagCube`

        Raises
        ------
        ValueError
            If the cube is not 3-D with time first, or the channel or exposure time is
            neither in the metadata nor given.
        """
        if isinstance(cube, cls):
            return cube
        physical_types = cube.array_axis_physical_types
        if cube.data.ndim != 3 or not any("time" in t for t in physical_types[0]):
            raise ValueError(
                f"from_ndcube needs a 3-D cube with time on the first array axis; "
                f"this one has axes {physical_types}"
            )
        times = cube.axis_world_coords(0, wcs=cube.wcs)[0]
        headers = _per_frame_headers(cube.meta, times.size)
        if wavelength is None:
            wavelength = _header_quantity(headers[:1], "WAVELNTH", u.AA, "wavelength")[0]
        if exposure_time is None:
            exposure_time = _header_quantity(headers, "EXPTIME", u.s, "exposure_time")
        exposure_time = u.Quantity(exposure_time, u.s) * np.ones(times.shape)

        ny, nx = cube.data.shape[1:]
        celestial, frame = tangent_plane_wcs(cube.wcs, (ny, nx))
        unit = cube.unit
        headers = headers.updated({
            **celestial_header(celestial), **get_observer_meta(frame.observer, frame.rsun),
            "WAVELNTH": u.Quantity(wavelength, u.AA).value, "WAVEUNIT": "angstrom",
            "EXPTIME": exposure_time.to_value(u.s), "T_OBS": times.isot, "BUNIT": _unit_string(unit),
        }, remove=_WCS_KEYWORDS)
        data = da.asarray(cube.data, chunks=(1, ny, nx))
        return cls._from_frames(
            data, headers, times, celestial_wcs=celestial, frame=frame,
            wavelength=u.Quantity(wavelength, u.AA), unit=unit,
        )

    @classmethod
    def _from_frames(cls, data, headers, times, *, celestial_wcs, frame, wavelength, unit, exposure_time=None,
                     source=None):
        """
        Build the cube from time-sorted data, headers and times, and the first frame's description.

        ``headers`` is a `~sunpy_timelag.io.meta.FrameHeaders` or a sequence of dict-like headers;
        ``exposure_time`` defaults to the headers' ``EXPTIME`` (NaN where missing); ``source`` is the
        `~sunpy_timelag.io.source.FileSource` that ``data`` was read from, if any.
        """
        celestial_wcs.pixel_shape = data.shape[:0:-1]
        headers = FrameHeaders.from_headers(headers)
        if exposure_time is None:
            exposure_time = u.Quantity(_exposures(headers), u.s)
        meta = FrameMeta(
            headers=headers, exposure_time=exposure_time, wavelength=wavelength, celestial_wcs=celestial_wcs,
            source=None if source is None else (source, data.name),
        )
        return cls(data, wcs=timelag_wcs(celestial_wcs, frame, times), meta=meta, unit=unit)

    @classmethod
    def _from_headers(cls, data, headers, times, **kwargs):
        """`_from_frames`, describing the frames as sunpy reads the first header, unless ``kwargs`` say otherwise."""
        description = _describe(header_map(headers[0], data.shape[1:]))
        return cls._from_frames(data, headers, times, **{**description, **kwargs})

    # ---- properties ---------------------------------------------------------------------------

    @property
    def time(self):
        """`~astropy.time.Time`: observation time of each frame, ascending (a scalar for one frame)."""
        if "time" not in self.meta.axes:  # one frame: its time is a global coordinate
            return self.global_coords["time"]
        return self.axis_world_coords(self.meta.axes.index("time"))[0]

    @property
    def wavelength(self):
        """`~astropy.units.Quantity`: the channel's wavelength (``None`` if unknown)."""
        return self.meta["wavelength"]

    @property
    def channel(self):
        """int: the channel, as the wavelength in Angstrom rounded to an integer (e.g. 171)."""
        if self.wavelength is None:
            raise ValueError("this cube has no wavelength: build it with from_ndcube(..., wavelength=...)")
        return int(round(self.wavelength.to_value(u.AA)))

    @property
    def exposure_time(self):
        """`~astropy.units.Quantity`: exposure time of each frame (NaN where unknown; a scalar for one frame)."""
        return self.meta["exposure_time"]

    @property
    def headers(self):
        """
        `~sunpy_timelag.io.meta.FrameHeaders`: the header of each frame, as read.

        A sequence of headers held as one table (``headers.table``, a row per frame, a column per
        keyword, as a `dkist.Dataset` keeps them): ``headers[i]`` is frame ``i``'s header as a
        `~sunpy.util.metadata.MetaDict`, ``headers.column("EXPTIME")`` one keyword in every frame.
        """
        return self.meta["headers"]

    @property
    def celestial_wcs(self):
        """`astropy.wcs.WCS`: the 2-D celestial FITS WCS of every frame of this cube (a copy)."""
        return self.meta["celestial_wcs"].deepcopy()

    @property
    def observer(self):
        """`~astropy.coordinates.SkyCoord`: the observer of the helioprojective frame."""
        return self.wcs.pixel_to_world(0, 0, 0)[0].observer

    # ---- NDCube behaviour ---------------------------------------------------------------------

    def __str__(self):
        time = np.atleast_1d(self.time)
        lines = [("Channel", "unknown" if self.wavelength is None else f"{self.channel} Angstrom"),
                 ("Observation", f"{time[0].isot} to {time[-1].isot} ({time.size} frame{'s' * (time.size > 1)})")]
        if time.size > 1:
            lines.append(("Cadence", f"{np.median(np.diff((time - time[0]).to_value(u.s))):.2f} s (median)"))
        exposure = np.atleast_1d(self.exposure_time.to_value(u.s))
        lines.append(("Exposure time", f"{np.nanmin(exposure):.3f} to {np.nanmax(exposure):.3f} s"))
        scale = u.Quantity(self.celestial_wcs.proj_plane_pixel_scales()).to_value(u.arcsec)
        lines += [("Pixels", f"{' x '.join(map(str, self.celestial_wcs.pixel_shape))} (x, y) of "
                             f"{scale[0]:.3g} x {scale[1]:.3g} arcsec"),
                  ("Array axes", ", ".join(self.meta.axes)),
                  ("Unit", str(self.unit)),
                  ("Data", repr(self.data))]
        return "\n".join([type(self).__name__, "-" * len(type(self).__name__)]
                         + [f"{name + ':':<15}{value}" for name, value in lines])


    def __getitem__(self, item):
        items = item if isinstance(item, tuple) else (item,)
        if sum(isinstance(index, int | np.integer) for index in items) >= self.data.ndim:
            raise IndexError(f"a TimelagCube keeps at least one array axis; {item!r} selects one value: "
                             "index cube.data instead")
        new = super().__getitem__(item)
        source = self._file_source()
        if source is None or len(items) > 3 or not all(isinstance(index, slice) for index in items):
            return new
        items += (slice(None),) * (3 - len(items))
        frames = np.arange(self.data.shape[0])[items[0]]
        return new._read_through(source.sliced(frames, *items[1:]))

    def _file_source(self):
        """The `~sunpy_timelag.io.source.FileSource` that the data are read from, or `None`."""
        source, name = self.meta.get("source") or (None, None)
        return source if name == self.data.name else None

    def _read_through(self, source):
        """This cube with the data of ``source``, read only where needed."""
        data = source.frames()
        return self._new_instance(data=data, meta=FrameMeta(self.meta, source=(source, data.name)))

    def _frame_windows(self, origins, size):
        """
        A window of ``size`` pixels of every frame, each at its origin ``(row, column)``, one chunk a frame.

        Read straight from the files (only the windows) where the cube's data come from them.
        """
        source = self._file_source()
        if source is not None:
            return source.windows(origins, size)
        from .io.loader import stack_arrays

        return stack_arrays([self.data[i, y : y + size[0], x : x + size[1]].rechunk(-1)
                             for i, (y, x) in enumerate(origins)])

    def _series_data(self):
        """
        The data as whole time series over blocks of pixels, the layout the time-lag analysis reads.

        Read that way straight from the files where the cube's data come from them; otherwise
        rechunked (`sunpy_timelag.lags.time_contiguous`).
        """
        source = self._file_source()
        return lags.time_contiguous(self.data) if source is None else source.series()

    def reproject_to(self, target_wcs, *args, **kwargs):
        """
        Reproject the data onto ``target_wcs``, as `ndcube.NDCube.reproject_to` does (it computes the data).

        The pixels of the result need not be frames of this channel on its time axis, so the result is
        a plain `~ndcube.NDCube` whose ``meta["headers"]`` table gives each frame's channel and exposure
        time when the frames are kept (the same number along the time axis): `from_ndcube` makes it a
        TimelagCube again. To follow the solar rotation, use `derotate`, which stays lazy.

        Parameters
        ----------
        target_wcs, *args, **kwargs
            See `ndcube.NDCube.reproject_to`.

        Returns
        -------
        `~ndcube.NDCube`
        """
        from astropy.table import Table

        from .backend import to_numpy

        exposure = np.atleast_1d(self.exposure_time.to_value(u.s))
        wavelength = np.nan if self.wavelength is None else self.wavelength.to_value(u.AA)
        frames = Table({"WAVELNTH": np.full(exposure.size, wavelength), "EXPTIME": exposure})
        computed = NDCube(to_numpy(self.data.compute()), wcs=self.wcs, unit=self.unit, meta={"headers": frames})
        return computed.reproject_to(target_wcs, *args, **kwargs)

    # ---- operations ---------------------------------------------------------------------------

    def rebin(self, bin_shape, operation=np.mean, **kwargs):
        """
        Rebin the cube by integer factors ``bin_shape = (n_t, n_y, n_x)`` (ndcube's `~ndcube.NDCube.rebin`).

        The data are combined by ``operation`` (lazily), the coordinates become those
        of the bin centres, and a bin of frames keeps the header of its first frame and
        ``operation`` of the exposure times.

        Returns
        -------
        `TimelagCube`

        Raises
        ------
        ValueError
            If a factor of ``bin_shape`` is not a positive integer.
        """
        factors = np.ravel(u.Quantity(bin_shape, u.pix).value if isinstance(bin_shape, u.Quantity) else bin_shape)
        if factors.dtype.kind not in "iuf" or not np.all((factors >= 1) & (factors % 1 == 0)):
            raise ValueError(f"bin_shape must be positive integers (n_t, n_y, n_x), one per axis; got {bin_shape!r}")
        new = super().rebin(bin_shape, operation=operation, **kwargs)
        factors = np.asarray(self.data.shape) // new.data.shape
        new.meta = self.meta.rebin(factors, operation)
        source = self._file_source()
        if source is None or self.meta.axes != ("time", "y", "x") or factors[0] != 1:
            return new
        return new._read_through(source.then(("bin", tuple(int(f) for f in factors[1:]), operation), new.data.dtype))

    def submap(self, bottom_left, *, top_right=None, width=None, height=None):
        """
        Crop every frame as `sunpy.map.GenericMap.submap` crops a map.

        Parameters
        ----------
        bottom_left : `~astropy.coordinates.SkyCoord` or `~astropy.units.Quantity` (pixels)
        top_right : same as ``bottom_left``, optional
        width, height : `~astropy.units.Quantity`, optional
            Angular size, with a `~astropy.coordinates.SkyCoord` ``bottom_left``.

        Returns
        -------
        `TimelagCube`

        Raises
        ------
        ValueError
            If the region lies entirely outside the field of view.
        """
        frame = self._grid_map()
        sub = frame.submap(bottom_left, top_right=top_right, width=width, height=height)
        if 0 in sub.data.shape:
            raise ValueError(f"the submap from {bottom_left} lies entirely outside the field of view")
        offset = u.Quantity(frame.reference_pixel) - u.Quantity(sub.reference_pixel)
        x0, y0 = np.rint(offset.to_value(u.pix)).astype(int)
        ny, nx = sub.data.shape
        return self[:, y0 : y0 + ny, x0 : x0 + nx]

    def normalize_exposure(self):
        """
        Divide each frame by its exposure time (lazily): DN becomes DN/s.

        Returns
        -------
        `TimelagCube`

        Raises
        ------
        ValueError
            If an exposure time is unknown or not positive, or the cube is already a rate.
        """
        unit = self.unit or u.dimensionless_unscaled
        if any(base.physical_type == "time" and power < 0 for base, power in zip(unit.bases, unit.powers, strict=True)):
            raise ValueError(f"the cube is already a rate ({self.unit}): it was normalised before")
        exposure = self.exposure_time.to_value(u.s)
        bad = np.flatnonzero(~(exposure > 0))
        if bad.size:
            raise ValueError(
                f"frame {bad[0]} ({self.time[bad[0]].isot}) has exposure time {exposure[bad[0]]} s: "
                "cannot normalise"
            )
        dtype = np.result_type(self.data.dtype, np.float32)
        exposure = array_module(self.data).asarray(exposure, dtype=dtype)  # on the GPU for CuPy chunks
        data = self.data / exposure[:, np.newaxis, np.newaxis]
        new = self._new_instance(data=data, unit=unit / u.s)
        source = self._file_source()
        if source is None:
            return new
        return new._read_through(source.then(("divide", self.exposure_time.to_value(u.s)), data.dtype))

    def average(self):
        """
        The time average as a (lazy) `~sunpy.map.GenericMap`.

        Its header is that of the first frame with the cube's celestial WCS, the
        observation times spanning the cube (``DATE-OBS`` the first frame's, ``DATE-END``
        the last's, ``DATE-AVG`` their mean) and the mean exposure time.

        Returns
        -------
        `~sunpy.map.GenericMap`
        """
        time = self.time
        header = frame_header(self.headers[0], self.celestial_wcs, {
            "T_OBS": None, "DATE-OBS": time[0].isot, "DATE-END": time[-1].isot,
            "DATE-AVG": (time[0] + (time - time[0]).mean()).isot,
            "EXPTIME": float(np.nanmean(self.exposure_time.to_value(u.s))), "BUNIT": _unit_string(self.unit),
        })
        return sunpy.map.Map(self.data.mean(axis=0), header)

    def to_maps(self):
        """
        One lazy `~sunpy.map.GenericMap` per frame, as a `~sunpy.map.MapSequence`.

        Each map has its frame's header with the cube's celestial WCS, the frame's
        time (``T_OBS``), exposure time and unit; `from_maps` rebuilds the cube.

        Returns
        -------
        `~sunpy.map.MapSequence`
        """
        return sunpy.map.Map([self._frame_map(i) for i in range(self.data.shape[0])], sequence=True)

    def persist(self, **kwargs):
        """
        The same cube with its data computed and kept in memory (or in a cluster's memory).

        Use it on a prepared cube that several analyses read, so that the files are read
        and the preparation computed once. The data are kept as whole time series per
        chunk (`sunpy_timelag.lags.time_contiguous`), the layout the time-lag analysis
        reads, rather than one chunk per frame. See `dask.array.Array.persist`.

        Returns
        -------
        `TimelagCube`
        """
        return self._new_instance(data=self._series_data().persist(**kwargs))

    def as_cupy(self):
        """
        The same cube with CuPy chunks (on the GPU), lazily: every later step runs there.

        Preparation (`deconvolve`, `register`, `derotate`, `normalize_exposure`), `rebin` and the
        time-lag analysis keep CuPy chunks on the GPU; result maps hold NumPy copies. Needs CuPy
        (the ``[gpu]`` extra) and an NVIDIA GPU.

        Returns
        -------
        `TimelagCube`

        Raises
        ------
        ImportError
            If CuPy is not installed.
        """
        try:
            import cupy
        except ImportError as error:
            raise ImportError("as_cupy() needs CuPy: pip install 'sunpy-timelag[gpu]' (or cupy-cuda13x)") from error
        return self._with_chunks(cupy.asarray, cupy)

    def as_numpy(self):
        """
        The same cube with NumPy chunks (in main memory), lazily: the inverse of `as_cupy`.

        Returns
        -------
        `TimelagCube`
        """
        from .backend import to_numpy

        return self._with_chunks(to_numpy, np)

    def _with_chunks(self, convert, xp):
        meta = xp.empty((0,) * self.data.ndim, dtype=self.data.dtype)
        return self._new_instance(data=self.data.map_blocks(convert, dtype=self.data.dtype, meta=meta))

    def interpolate_time(self, times):
        """
        The cube linearly interpolated onto other observation times (lazily).

        Each new frame is built from the two frames around it; a frame keeps the
        header of the earlier one and the interpolated exposure time.

        Parameters
        ----------
        times : `~astropy.time.Time`
            Strictly increasing times within the cube's time range.

        Returns
        -------
        `TimelagCube`
        """
        seconds = (self.time - self.time[0]).to_value(u.s)
        new_seconds = (times - self.time[0]).to_value(u.s)
        data = lags.resample(self.data, seconds, new_seconds)
        earlier = np.clip(np.searchsorted(seconds, new_seconds, side="right") - 1, 0, seconds.size - 1)
        exposure = np.interp(new_seconds, seconds, self.exposure_time.to_value(u.s)) * u.s
        meta = FrameMeta(self.meta, headers=self.headers[earlier], exposure_time=exposure)
        frame = self.wcs.pixel_to_world(0, 0, 0)[0].frame
        return self._new_instance(data=data, wcs=timelag_wcs(self.celestial_wcs, frame, times), meta=meta)

    # ---- channel pairs ------------------------------------------------------------------------

    def cross_correlation(self, other, lag_bounds=None, normalization="global"):
        r"""
        The cross-correlation with another channel in every pixel, as a function of lag.

        .. math::

            C_{AB}(\tau) = \frac{1}{N}\sum_t \tilde a(t)\, \tilde b(t + \tau),

        with :math:`\tilde a, \tilde b` the z-scored series of this cube (A) and ``other``
        (B) on their common, evenly spaced time grid: a positive lag means B peaks after A.

        Parameters
        ----------
        other : `TimelagCube`
            Channel B, covering the same pixels.
        lag_bounds : `~astropy.units.Quantity`, optional
            Smallest and largest lag, e.g. ``[-3, 3] * u.h``. Default: all lags.
        normalization : {"global", "overlap"}, optional
            :math:`C_{AB}` (default), or the Pearson correlation of the samples each lag
            overlaps (unbiased; lags up to half the series), see
            `~sunpy_timelag.timelag_maps`.

        Returns
        -------
        `~ndcube.NDCube`
            ``(lag, y, x)``, lazy; its WCS gives the lag in seconds and the celestial
            coordinates of this cube.
        """
        analysis._check_other(self, other)
        return analysis._cross_correlation(self, other, lag_bounds, normalization)

    def timelag_map(self, other, lag_bounds=None, refine=True, min_correlation=None, normalization="global",
                    uncertainty=False):
        """
        The time lag that maximises the cross-correlation with ``other``, in every pixel.

        Parameters
        ----------
        other : `TimelagCube`
            Channel B (positive lag: B peaks after this channel).
        lag_bounds : `~astropy.units.Quantity`, optional
            Smallest and largest lag searched, e.g. ``[-3, 3] * u.h``. Default: all lags.
        refine : bool, optional
            Refine the lag below the cadence with a parabola through the peak and its
            neighbours (default). With `False` lags are multiples of the common cadence.
        min_correlation : float, optional
            Pixels whose peak correlation is below this (in [-1, 1]) get a NaN lag.
        normalization : {"global", "overlap"}, optional
            See `~sunpy_timelag.timelag_maps`.
        uncertainty : bool, optional
            Give the map the one-sigma uncertainty of the lag, in seconds, as its
            ``uncertainty`` (`~astropy.nddata.StdDevUncertainty`; see
            `sunpy_timelag.lagstats`).

        Returns
        -------
        `~sunpy.map.GenericMap`
            In seconds; its mask marks pixels whose peak sits on a lag bound. Constant or
            NaN pixels are NaN (with one `~sunpy_timelag.lags.TimelagWarning`).

        Notes
        -----
        The lag and the peak correlation come from one pass over the data: `correlation_map`
        of the same ``other``, ``lag_bounds`` and ``normalization``, called next, reuses it
        (and so does this method after `correlation_map`, with the other arguments at their
        defaults).
        """
        return self._pair(other, lag_bounds, normalization, (refine, min_correlation, uncertainty)).timelag

    def correlation_map(self, other, lag_bounds=None, normalization="global"):
        """
        The peak cross-correlation with ``other`` within the lag bounds, in every pixel.

        Parameters
        ----------
        other : `TimelagCube`
        lag_bounds : `~astropy.units.Quantity`, optional
            See `timelag_map`.
        normalization : {"global", "overlap"}, optional
            See `~sunpy_timelag.timelag_maps`.

        Returns
        -------
        `~sunpy.map.GenericMap`
            Dimensionless, in [-1, 1].

        Notes
        -----
        Computed in the same pass as `timelag_map`'s lags, and shared with it (see there).
        """
        return self._pair(other, lag_bounds, normalization).correlation

    def _pair(self, other, lag_bounds, normalization, options=None):
        """
        The `~sunpy_timelag.analysis.PairMaps` of this cube and ``other``, the last of them kept for reuse.

        ``options`` is ``(refine, min_correlation, uncertainty)``, or `None` for any: the peak correlation
        does not depend on them. A new computation runs with ``options`` (default: the defaults) and
        replaces the kept one.
        """
        analysis._check_other(self, other)
        key = (analysis._lag_bounds_seconds(lag_bounds), normalization)
        kept = getattr(self, "_kept_pair", None)
        if kept is not None and kept[0]() is other and kept[1] == key and options in (None, kept[2]):
            return kept[3]
        options = options or (True, None, False)
        refine, min_correlation, uncertainty = options
        maps = analysis._pair_maps([self, other], [(0, 1)], lag_bounds, refine=refine, min_correlation=min_correlation,
                                   normalization=normalization, uncertainty=uncertainty)[(0, 1)]
        self._kept_pair = (weakref.ref(other), key, options, maps)
        return maps

    def _grid_map(self):
        """
        A lazy map of the first frame in the cube's own coordinate frame (its observer and obstime).

        For most cubes that is the first frame's; for a derotated cube, the reference time's.
        """
        frame = self.wcs.pixel_to_world(0, 0, 0)[0].frame
        return view_map(self.headers[0], self.celestial_wcs, frame.observer, frame.rsun, frame.obstime,
                        self.data.shape[1:])

    def _frame_map(self, index, celestial_wcs=None):
        header = frame_header(self.headers[index], celestial_wcs or self.celestial_wcs, {
            "T_OBS": self.time[index].isot, "EXPTIME": float(self.exposure_time[index].to_value(u.s)),
            "BUNIT": _unit_string(self.unit),
        })
        return sunpy.map.Map(self.data[index], header)


def _unit_string(unit):
    return None if unit is None else unit.to_string()


def _describe(frame_map):
    """What a cube takes from its first frame, read by sunpy: celestial WCS, frame, channel, unit."""
    return {
        "celestial_wcs": frame_map.wcs,
        "frame": frame_map.coordinate_frame,
        "wavelength": frame_map.wavelength,
        "unit": frame_map.unit,
    }


def _per_frame_headers(meta, n_times):
    """Per-frame headers from ndcube/dkist metadata: a ``headers`` table, else ``meta`` itself."""
    meta = meta if hasattr(meta, "get") else {}
    table = meta.get("headers")
    if isinstance(table, FrameHeaders) and len(table) == n_times:
        return table
    if isinstance(table, Table) and len(table) == n_times:
        return FrameHeaders.from_table(table)
    return FrameHeaders.from_headers([{key: value for key, value in meta.items() if key != "headers"}] * n_times)


def _header_quantity(headers, keyword, unit, argument):
    """The values of ``keyword`` in ``headers`` as a Quantity, or an error naming ``argument``."""
    try:
        values = headers.column(keyword)
    except KeyError:
        values = np.ma.masked_all(1)
    if np.ma.is_masked(values) or any(value is None for value in values):
        raise ValueError(f"the cube's metadata have no {keyword}: pass {argument}=... to from_ndcube")
    return u.Quantity(np.asarray(values, dtype=float), unit)


def _exposures(headers):
    """Each frame's ``EXPTIME`` in seconds, read from its column: NaN where absent or not a number."""
    try:
        values = np.ma.filled(headers.column("EXPTIME").astype(object), None)
    except KeyError:
        values = [None] * len(headers)
    return frame_exposures({"EXPTIME": value} for value in values)

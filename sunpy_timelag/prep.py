"""
Instrument preparation of a `~sunpy_timelag.TimelagCube`, frame by frame and lazily, and its persistence.

The physically right order is: PSF deconvolution of the level-1 frames, registration to level 1.5
(both in `PrepMixin.prepare`), derotation onto one grid at one reference time (`PrepMixin.derotate`),
exposure normalisation, and cropping (``submap``) last. Each step maps a kernel of `sunpy_timelag.aia`
or `sunpy_timelag.rotation` over one-frame Dask chunks: nothing is read or computed before ``compute``,
and CuPy chunks stay on the GPU from one step to the next. `PrepMixin.to_zarr` keeps a prepared cube, so
that the preparation is done once.
"""
import astropy.units as u
import dask.array as da
import numpy as np

__all__ = ["PrepMixin"]


class PrepMixin:
    """Preparation steps of `~sunpy_timelag.TimelagCube` (PSF deconvolution, registration, derotation, persistence)."""

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

        if _levels(self.headers).max() > 1:
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
        from .io.meta import FrameHeaders

        _check_own_pixels(self)
        transforms = []
        headers = FrameHeaders.from_headers(_registered_headers(self.headers, self.data.shape[1:], transforms))
        _check_common_reference(headers)
        frames = np.empty((len(transforms), 1, 1), dtype=object)
        frames[:, 0, 0] = transforms
        dtype = np.result_type(self.data.dtype, np.float32)
        data = da.map_blocks(
            _register_frame, self.data.rechunk((1, -1, -1)), da.from_array(frames, chunks=1, name=False),
            missing=missing, order=order, dtype=dtype,
            chunks=((1,) * len(transforms), (transforms[0].shape[0],), (transforms[0].shape[1],)),
            meta=da.utils.meta_from_array(self.data, dtype=dtype),
        )
        return type(self)._from_headers(data, headers, self.time, exposure_time=self.exposure_time, unit=self.unit)

    def derotate(self, bottom_left=None, *, top_right=None, width=None, height=None, reference_time=None,
                 rotation_model="howard", order=3, missing=np.nan):
        r"""
        Follow the rotating Sun: every frame reprojected, lazily, onto one grid at one reference time.

        Each pixel of the result shows, in every frame, the same patch of the solar surface: the
        patch behind that pixel at ``reference_time``, carried by the Sun's differential rotation to
        the frame's own time. The rotation is sunpy's, as `sunpy.coordinates.propagate_with_solar_surface`
        applies it to coordinates (`sunpy.sun.models.differential_rotation`, sidereal, with the Sun's
        centre held fixed), and the geometry (gnomonic projection, the observer of each frame, the
        line of sight meeting the solar sphere) that of sunpy's frames: `sunpy_timelag.rotation`
        writes it out and maps the pixels; its results agree with sunpy's coordinate transforms to
        about :math:`10^{-7}` pixel.

        The grid is the region given, read as `~sunpy_timelag.TimelagCube.submap` reads it, on the
        cube's pixels seen at ``reference_time`` (coordinates are transformed to that time, without
        rotation); without a region, the whole field. Each output frame reads only the window of
        its frame that the mapping reaches (sliced from the Dask array per frame), and is computed
        by one task: nothing is read or computed before ``compute``.

        The values are the interpolating B-spline of order ``order`` of the frame's pixels at the
        mapped positions (as `register` interpolates, `scipy.ndimage` or `cupyx.scipy.ndimage`): an
        interpolation of the surface brightness, so a pixel keeps its unit (DN or DN/s per pixel)
        and its value, not the flux of a solid angle. That is what a time-lag analysis needs:
        every pixel of the grid is the same size, and a feature keeps its brightness while the
        rotation carries it across the disk (towards the limb the frame's pixels see a patch
        foreshortened into fewer pixels, and the interpolation does not conserve their summed
        counts). It is not flux-conserving; for a flux-conserving resampling, use
        `reproject.reproject_adaptive` with ``conserve_flux=True`` on the maps.

        Derotate after `register` and before `~sunpy_timelag.TimelagCube.normalize_exposure` and
        `~sunpy_timelag.TimelagCube.rebin`: ``cube.register().derotate(...).normalize_exposure()``.

        Parameters
        ----------
        bottom_left : `~astropy.coordinates.SkyCoord` or `~astropy.units.Quantity` (pixels), optional
            The region's bottom-left corner, as `sunpy.map.GenericMap.submap` takes it; default the
            whole field.
        top_right : same as ``bottom_left``, optional
        width, height : `~astropy.units.Quantity`, optional
            Angular size, with a `~astropy.coordinates.SkyCoord` ``bottom_left``.
        reference_time : `~astropy.time.Time` or str, optional
            The time the grid describes, within the cube's time range; default the middle frame's
            (frame ``n // 2``). The observer then is the frames' observer, interpolated linearly in
            time between the two nearest frames.
        rotation_model : str, optional
            sunpy's differential-rotation model: ``"howard"`` (default), ``"snodgrass"``,
            ``"allen"`` or ``"rigid"`` (see `sunpy.sun.models.differential_rotation`).
        order : int, optional
            Order of the spline interpolation, 0 to 5.
        missing : float, optional
            Value of the pixels without a source pixel: off the disk, rotated out of sight (behind
            the limb), or outside the frame. NaN pixels of a frame make NaN the output pixels whose
            interpolation they touch.

        Returns
        -------
        `~sunpy_timelag.TimelagCube`
            On the reference grid: its celestial WCS and coordinate frame are the grid's, with the
            observer and observation time of ``reference_time``; each frame keeps its own time
            (the cube's time axis), exposure time and header, whose WCS and observer keywords are
            the grid's (``DEROTREF`` and ``DEROTMOD`` record the reference time and the model).
            Floating point (at least float32).

        Raises
        ------
        ValueError
            If the region lies outside the field of view, ``reference_time`` outside the cube's
            time range, ``order`` is not 0 to 5, ``rotation_model`` is not one of sunpy's, or the
            frames' celestial WCS is not a helioprojective gnomonic (``TAN``) projection.
        """
        from sunpy.map.header_helper import get_observer_meta

        from .maps import _WCS_KEYWORDS, celestial_header, header_map, view_map
        from .rotation import source_window

        if not isinstance(order, int | np.integer) or order not in range(6):
            raise ValueError(f"order must be an integer from 0 to 5, got {order!r}")
        rates = _rotation_rates(rotation_model)
        n, *frame_shape = self.data.shape
        times = self.time
        reference_time = _reference_time(times, reference_time)
        seconds = (times - reference_time).to_value(u.s)
        observers = _observers(self.headers, frame_shape)
        rsun = header_map(self.headers[int(np.argmin(np.abs(seconds)))], frame_shape).coordinate_frame.rsun
        observer = _interpolated_observer(observers, seconds, reference_time)
        observer_meta = get_observer_meta(observer, rsun)

        # the grid: the cube's pixels (or the region of them) seen at the reference time
        grid = view_map(self.headers[0], self.celestial_wcs, observer, rsun, reference_time, frame_shape)
        if bottom_left is not None:
            grid = grid.submap(bottom_left, top_right=top_right, width=width, height=height)
            if 0 in grid.data.shape:
                raise ValueError(f"the region from {bottom_left} lies entirely outside the field of view")
        shape = grid.data.shape
        reference = _view(grid.wcs, observer, rsun)
        source = _view(self.celestial_wcs, observer, rsun)
        frames = [source.with_observer(numbers) for numbers in zip(*_observer_numbers(observers, rsun), strict=True)]
        angles = _frame_angles(reference_time, times)

        # one window of one shape per frame, holding the pixels its mapping reaches
        windows = [source_window(shape, reference, frame, dt, angle, rates, frame_shape, order)
                   for frame, dt, angle in zip(frames, seconds, angles, strict=True)]
        size = [max([w[k + 1] - w[k] for w in windows if w is not None], default=1) for k in (0, 2)]
        origins = [(min(w[0], frame_shape[0] - size[0]), min(w[2], frame_shape[1] - size[1])) if w else (0, 0)
                   for w in windows]
        data = self._frame_windows(origins, size)
        numbers = np.array([[*frame.observer, dt, angle, *origin]
                            for frame, dt, angle, origin in zip(frames, seconds, angles, origins, strict=True)])
        dtype = np.result_type(self.data.dtype, np.float32)
        data = da.map_blocks(
            _derotate_frame, data, da.from_array(numbers[:, np.newaxis], chunks=(1, 1, numbers.shape[1])),
            reference=reference, source=source, rates=rates, shape=shape, frame_shape=tuple(frame_shape),
            order=order, missing=missing, dtype=dtype, chunks=((1,) * n, (shape[0],), (shape[1],)),
            meta=da.utils.meta_from_array(self.data, dtype=dtype),
        )
        headers = self.headers.updated({**celestial_header(grid.wcs), **observer_meta, "DEROTREF": reference_time.isot,
                                        "DEROTMOD": rotation_model}, remove=_WCS_KEYWORDS)
        return type(self)._from_frames(data, headers, times, celestial_wcs=grid.wcs, frame=grid.coordinate_frame,
                                       wavelength=self.wavelength, unit=self.unit, exposure_time=self.exposure_time)

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
        coordinates and metadata (headers as a `~sunpy_timelag.io.meta.FrameHeaders`).

        Parameters
        ----------
        path : str or os.PathLike

        Returns
        -------
        `~sunpy_timelag.TimelagCube`
        """
        from .io.meta import FrameHeaders
        from .io.zarr import read_cube_store
        from .maps import header_map

        stored = read_cube_store(path)
        headers = FrameHeaders.from_headers(stored.headers)
        frame = header_map(headers[0], stored.data.shape[1:]).coordinate_frame
        return cls._from_frames(stored.data, headers, stored.time, celestial_wcs=stored.celestial_wcs, frame=frame,
                                wavelength=stored.wavelength, unit=stored.unit, exposure_time=stored.exposure_time)


def _register_frame(block, frames, *, missing, order):
    """Register the one frame of a ``(1, ny, nx)`` block with its `Registration` (a ``(1, 1, 1)`` object block)."""
    image = block[0].astype(np.result_type(block.dtype, np.float32), copy=False)
    return frames.item()(image, missing=missing, order=order)[np.newaxis]


def _levels(headers):
    """The processing level of each frame (``LVL_NUM``; 1 if absent), read from its column."""
    try:
        values = np.ma.filled(headers.column("LVL_NUM").astype(object), None)
    except KeyError:
        values = [None] * len(headers)
    return np.array([float(value or 1) for value in values])


def _registered_headers(headers, shape, transforms):
    """
    The level-1.5 header of each frame, one frame at a time, appending its transform to ``transforms``.

    Each frame's `~sunpy_timelag.aia.register.Registration` comes from a data-less map of its
    header (as `sunpy_timelag.aia.register` reads it), on the grid of the first frame; only the
    transform (a few numbers, no header) is kept for the Dask graph, and one frame's map and header
    are alive at a time.
    """
    from dataclasses import replace

    from .aia.register import Registration, check_level1_map
    from .maps import header_map

    first_map = header_map(headers[0], shape)
    check_level1_map(first_map)
    first = Registration.from_map(first_map)
    for i, header in enumerate(headers):
        registration = first if i == 0 else Registration.from_map(header_map(header, shape), grid=first)
        transforms.append(replace(registration, meta=None))
        yield registration.meta


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


def _check_common_reference(headers):
    """Refuse frames whose reference coordinates differ: they would not share a level-1.5 grid."""
    crval = np.column_stack([headers.column("CRVAL1"), headers.column("CRVAL2")]).astype(float)
    tolerance = 1e-3 * abs(float(headers.column("CDELT1")[0]))  # a thousandth of a pixel
    bad = np.flatnonzero((np.abs(crval - crval[0]) > tolerance).any(axis=1))
    if bad.size:
        (x0, y0), (x, y) = crval[0], crval[bad[0]]
        raise ValueError(f"frames with different reference coordinates (CRVAL: {x0}, {y0} and {x}, {y}) do not "
                         "share a level-1.5 grid: register them separately")


def _derotate_frame(block, numbers, *, reference, source, rates, shape, frame_shape, order, missing):
    """
    Derotate the window of one frame (a ``(1, h, w)`` block) with its numbers (a ``(1, 1, 7)`` block:
    the observer's longitude, latitude and distance, the seconds and frame angle from the reference
    time, the window's origin), with `sunpy_timelag.rotation.derotate_frame`.
    """
    from .rotation import derotate_frame

    lon, lat, distance, seconds, angle, y0, x0 = (float(v) for v in np.asarray(numbers).ravel())
    return derotate_frame(block[0], (int(y0), int(x0)), reference, source.with_observer((lon, lat, distance)),
                          seconds, angle, rates, shape, frame_shape, order=order, missing=missing)[np.newaxis]


def _rotation_rates(model):
    r"""
    The coefficients :math:`(A, B, C)` (radians per second) of sunpy's differential-rotation model
    ``model``, :math:`\omega = A + B \sin^2\beta + C \sin^4\beta` (sidereal), read from
    `sunpy.sun.models.differential_rotation` itself at three latitudes and checked at a fourth.
    """
    from sunpy.sun.models import differential_rotation

    latitude = np.radians([0.0, 30.0, 60.0, 45.0])
    try:
        rate = differential_rotation(1 * u.s, latitude * u.rad, model=model).to_value(u.rad)
    except ValueError as error:
        raise ValueError(f"rotation_model={model!r} is not one of sunpy's differential-rotation models ({error})") \
            from error
    sin2 = np.sin(latitude) ** 2
    coefficients = np.linalg.solve(np.vander(sin2[:3], 3, increasing=True), rate[:3])
    if not np.isclose(np.polyval(coefficients[::-1], sin2[3]), rate[3], rtol=1e-12, atol=0):
        raise ValueError(f"rotation_model={model!r}: sunpy's rate is not of the form A + B sin^2 + C sin^4")
    return tuple(float(c) for c in coefficients)


def _reference_time(times, reference_time):
    """``reference_time`` as a `~astropy.time.Time` within ``times`` (default the middle frame's)."""
    from astropy.time import Time

    if reference_time is None:
        return times[times.size // 2]
    reference_time = Time(reference_time)
    if not reference_time.isscalar or not times[0] <= reference_time <= times[-1]:
        raise ValueError(f"reference_time {reference_time} is outside the cube's time range ({times[0].isot} "
                         f"to {times[-1].isot})")
    return reference_time


def _observers(headers, shape):
    """
    The observer of each frame, in heliographic Stonyhurst coordinates, as sunpy reads it (one frame's
    map at a time): sunpy's map class for the instrument chooses the keywords, e.g. an AIA map its
    ``HAEX_OBS``, ``HAEY_OBS`` and ``HAEZ_OBS`` before ``HGLN_OBS``, ``HGLT_OBS`` and ``DSUN_OBS``.
    """
    from astropy.coordinates import SkyCoord
    from sunpy.coordinates import HeliographicStonyhurst

    from .maps import header_map

    observers = [header_map(header, shape).observer_coordinate for header in headers]
    return SkyCoord([o.lon for o in observers], [o.lat for o in observers], [o.radius for o in observers],
                    frame=HeliographicStonyhurst)


def _observer_numbers(observer, rsun):
    """An observer (HGS `~astropy.coordinates.SkyCoord`) as longitude, latitude (radians) and distance (solar radii)."""
    return observer.lon.to_value(u.rad), observer.lat.to_value(u.rad), (observer.radius / rsun).decompose().value


def _interpolated_observer(observers, seconds, reference_time):
    """The observer at ``reference_time``: the frames' observers, linear in time between the nearest two."""
    from astropy.coordinates import SkyCoord
    from sunpy.coordinates import HeliographicStonyhurst

    lon = np.unwrap(observers.lon.to_value(u.rad))
    lon, lat, radius = (np.interp(0.0, seconds, v) for v in (lon, observers.lat.to_value(u.rad),
                                                             observers.radius.to_value(u.m)))
    return SkyCoord(lon * u.rad, lat * u.rad, radius * u.m, frame=HeliographicStonyhurst(obstime=reference_time))


def _frame_angles(reference_time, times):
    """
    The turn (radians) of the heliographic Stonyhurst axes from ``reference_time`` to each of ``times``,
    about the Sun's axis, as sunpy transforms between Stonyhurst frames of different times with
    the Sun's centre held fixed (`sunpy.coordinates.transform_with_sun_center`): one transform for
    all frames.
    """
    from astropy.coordinates import SkyCoord
    from sunpy.coordinates import HeliographicStonyhurst, transform_with_sun_center

    zero = np.zeros(times.shape) * u.deg
    with transform_with_sun_center():
        origin = SkyCoord(zero, zero, 1 * u.AU, frame=HeliographicStonyhurst(obstime=reference_time))
        return origin.transform_to(HeliographicStonyhurst(obstime=times)).lon.to_value(u.rad)


def _view(wcs, observer, rsun):
    """A `sunpy_timelag.rotation.View` of a 2-D helioprojective TAN FITS WCS and an observer (HGS SkyCoord)."""
    from .rotation import View

    celestial = wcs.wcs
    if [t[:4] for t in celestial.ctype] != ["HPLN", "HPLT"] or any(t[-3:] != "TAN" for t in celestial.ctype) \
            or celestial.lonpole != 180 or wcs.has_distortion:
        raise ValueError(f"derotate needs frames in a helioprojective gnomonic (TAN) projection, without "
                         f"distortion, longitude first; the cube's WCS is {list(celestial.ctype)}")
    units = [u.Unit(unit) for unit in celestial.cunit]
    matrix = wcs.pixel_scale_matrix * np.array([[units[0].to(u.rad)], [units[1].to(u.rad)]])
    crval = [(value * unit).to_value(u.rad) for value, unit in zip(celestial.crval, units, strict=True)]
    return View(tuple(float(p) - 1 for p in celestial.crpix), tuple(map(tuple, matrix.tolist())), tuple(crval),
                _observer_numbers(observer, rsun))

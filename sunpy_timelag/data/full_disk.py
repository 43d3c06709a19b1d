r"""
A synthetic full-disk AIA level-1 observation, as the archive serves it, with a known ground truth.

The frames are what JSOC exports: one file per frame, an empty primary HDU and the ``int16`` image
Rice tile-compressed in HDU 1, with AIA's level-1 header (``T_OBS``, ``EXPTIME``, pointing,
roll, observer, ``QUALITY``, ``BLANK``, ...). The Sun is not at the centre of the frame and the
frame is rolled by :math:`\gamma_j` (``CROTA2``, a quarter of a degree, drifting slowly); the Sun's
centre moves a little from frame to frame (``CRPIX``): `sunpy_timelag.aia.register` must undo all
of this. Each channel has its own times in the 12 s AIA cycle, exposure times that scatter a little,
a few short AEC-like exposures and ``bad_quality`` frames that the archive flags in ``QUALITY``.

Frame :math:`j` of channel :math:`c`, taken at :math:`t_j`, holds (DN)

.. math::

    D_c(p, t_j) = E_j \bigl[B_c\, \beta(\rho_j(p)) + A_c(q_j(p), t_j)\bigr] + n,

with :math:`\beta` the limb-brightened disk and faint corona of `~._surface.disk_profile` (1 at the
disk centre, :math:`\rho_j` the distance from the Sun's centre in solar radii) and :math:`A_c` the
active region: on a patch of the solar surface, the loops of `~._arcade.LoopArcade` cooling through
the channels (count rate :math:`R_c\, s_{\phi_c}`), their diffuse halo and four compact bright
points, all defined in the pixels of the *reference grid* (below) at the reference time
:math:`t_\mathrm{ref}`, the middle of the observation. :math:`q_j(p)` is where the surface point seen
in pixel :math:`p` at :math:`t_j` was at :math:`t_\mathrm{ref}`: sunpy's differential rotation
(`~sunpy.coordinates.propagate_with_solar_surface`, Howard's model by default), evaluated by
`~._surface.SurfaceTracker`; the emission model is sampled there exactly. The active region therefore
rotates with the solar surface, about 2 arcsec per 12 minutes near the disk centre. The disk term is
computed once at the nominal pointing and moved by each frame's pointing offset to first order (its
gradient), as in `~.synthetic.make_synthetic_observation`; :math:`n` is the photon noise and read
noise of the mean of the :math:`k^2` AIA pixels that one :math:`k \times 0.6''` pixel stands for (drawn
as windows of one pool of deviates per channel, see ``_Scene.frames``), and the result is rounded to
``int16``. A flagged frame's image is spoiled as its flag says (`QUALITY_FAULTS`).

The ground truth lives on the reference grid: the pixels that
``cube.register().derotate(bottom_left, top_right=top_right, reference_time=reference_time)`` gives.
`~sunpy_timelag.TimelagCube.register` puts every frame on the level-1.5 grid of its first frame
(north up, the Sun's centre at the frame's centre, the plate scale rounded to a multiple of 0.6");
derotate reads its region "as ``submap`` reads it, at ``reference_time``, from the cube's celestial
WCS". The reference grid is therefore the ``submap`` from ``bottom_left`` to ``top_right`` (the centres
of its corner pixels) of the level-1.5 map of the first frame with the observer of the reference
time. `FullDiskObservation.truth_header` is its header, and the time lag of the pair (A, B) is
:math:`(\phi_B - \phi_A)\,\tau(x, y)` in its loop pixels.
"""
import functools
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import astropy.units as u
import numpy as np
import sunpy.map
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.time import Time
from sunpy.coordinates import sun

from ..exceptions import OutputPathError
from ..io.write import write_atomically
from ._arcade import LoopArcade
from ._surface import SurfaceTracker, disk_profile, plane_coordinates
from .synthetic import (
    _CHANNELS,
    AEC_FRACTION,
    EXPOSURE_SCATTER,
    RSUN_REF,
    STANDARD_CHANNELS,
    START,
    TIME_JITTER,
    _true_timelag,
    _wavelength,
)

__all__ = ["FullDiskObservation", "make_full_disk_observation", "QUALITY_FAULTS"]

#: AIA's level-1 plate scale (``IMSCL_MP``), arcsec per unbinned pixel.
AIA_PLATE_SCALE = 0.599489
#: The Sun's centre, from the centre of the frame (arcsec): level-1 frames are not centred.
SUN_OFFSET = (8.2, -9.6)
#: Scatter of the pointing from frame to frame (arcsec).
POINTING_JITTER = 0.25
#: Roll (deg): ``ROLL`` plus a slow oscillation of amplitude ``ROLL_DRIFT`` over a day.
ROLL, ROLL_DRIFT = 0.25, 0.01
#: Centre (arcsec, at the reference time) and size (width, height; arcsec) of the active region.
REGION_CENTRE = (-320.0, 180.0)
REGION_SIZE = (320.0, 240.0)
#: Read noise of an unbinned pixel (DN).
READ_NOISE = 1.2
#: Bright points: positions (fractions of the reference grid's width and height), peak brightness
#: (times the channel's disk-centre rate) and Gaussian width (reference pixels).
BRIGHT_POINTS = ((-0.12, -0.1), (1.12, -0.08), (-0.1, 1.12), (1.1, 1.12))
BRIGHT_POINT_PEAK, BRIGHT_POINT_WIDTH = 4.0, 1.0
#: The halo of the active region falls continuously to 0 where it is this fraction of its peak.
HALO_CUTOFF = 0.2
#: Value of missing pixels (``BLANK``).
BLANK = -32768
#: Frames the archive flags: (what went wrong, ``QUALITY`` bits, header keywords). aiapy's
#: ``check_quality_flag`` names the bits: 17 the open ISS loop, 8-10 missing values (more than 5%),
#: 13 the spacecraft eclipse.
QUALITY_FAULTS = (
    ("ISS loop open: the image is displaced", 1 << 17, {"AISTATE": "OPEN"}),
    ("an eighth of the pixels missing", (1 << 8) | (1 << 9) | (1 << 10), {}),
    ("eclipse: the image is dimmed", 1 << 13, {"ACS_ECLP": "YES"}),
)
#: ``ORIGIN`` of the frames: a channel's folder is replaced only if it holds nothing else.
ORIGIN = "sunpy_timelag synthetic"
_FILE_NAME = re.compile(r"aia\.lev1\.\d+A_[0-9T_.-]+Z\.image_lev1\.fits")
#: Rows of the compression tiles (astropy compresses single-row tiles slowly).
TILE_ROWS = 16
#: Frames processed at once (memory: a few MB per frame of the active-region window).
BLOCK = 32


@dataclass(frozen=True, repr=False)
class FullDiskObservation:
    """
    A synthetic full-disk AIA level-1 observation and its ground truth; made by
    `make_full_disk_observation`.

    Per-channel attributes are dicts keyed by the wavelength in Å (an `int`). The ground truth is
    given on the grid that derotating the registered frames to ``bottom_left``, ``top_right`` at
    ``reference_time`` produces, pixel for pixel::

        cubes = {c: TimelagCube.from_files(f"{directory}/{c}/*.fits").register()
                    .derotate(obs.bottom_left, top_right=obs.top_right, reference_time=obs.reference_time)
                    .normalize_exposure() for c in obs.channels}
        lag = cubes[335].timelag_map(cubes[171], lag_bounds=[-1, 1] * u.h)
        error = lag.data - obs.true_timelag(335, 171)        # NaN outside obs.loop_mask

    (``true_timelag_map`` gives the truth as a map, to resample it onto another grid.)

    Attributes
    ----------
    channels : tuple of int
    times : dict of astropy.time.Time
        ``T_OBS`` of every frame, ascending.
    exposure_time : dict of astropy.units.Quantity
        ``EXPTIME`` of every frame.
    quality : dict of numpy.ndarray
        ``QUALITY`` of every frame: nonzero for the frames the archive flags.
    files : dict of list of pathlib.Path
        The FITS files, in time order; empty lists for an observation kept in memory.
    data : dict of numpy.ndarray or None
        ``(n_time, ny, nx)`` ``int16`` frames in DN, for an observation kept in memory; `None`
        when written to files (read them back).
    reference_time : astropy.time.Time
        The middle of the observation: the time at which the ground truth is given.
    bottom_left, top_right : astropy.coordinates.SkyCoord
        Centres of the corner pixels of the reference grid (which holds the loops), at the
        reference time: derotate with them.
    truth_header : sunpy.util.metadata.MetaDict
        Header of the reference grid (level 1.5, observer at the reference time).
    loop_mask : numpy.ndarray
        Reference-grid boolean: the loop pixels, where the time lags are defined.
    arcade : sunpy_timelag.data._arcade.LoopArcade
        The loops, in reference-grid pixels.
    bright_points : astropy.coordinates.SkyCoord
        The bright points at the reference time (compact features fixed on the solar surface).
    """

    channels: tuple
    times: dict
    exposure_time: dict
    quality: dict
    files: dict
    data: dict | None
    reference_time: Time
    bottom_left: SkyCoord
    top_right: SkyCoord
    truth_header: dict
    loop_mask: np.ndarray
    arcade: LoopArcade
    bright_points: SkyCoord
    _templates: dict = field(repr=False)
    _values: dict = field(repr=False)

    def __repr__(self):
        frames = {c: len(t) for c, t in self.times.items()}
        files = self.files[self.channels[0]]
        where = f"files in {files[0].parent.parent}" if files else "in memory"
        bad = sum(int(np.count_nonzero(q)) for q in self.quality.values())
        return (f"<FullDiskObservation of {self.truth_header['naxis2']}x{self.truth_header['naxis1']} "
                f"reference pixels, frames {frames} ({bad} flagged), {where}>")

    @cached_property
    def headers(self):
        """dict of list of `~astropy.io.fits.Header`: each frame's image header, as written (HDU 1)."""
        return {c: [_header(self._templates[c], values) for values in self._values[c]] for c in self.channels}

    @property
    def reference_wcs(self):
        """`~astropy.wcs.WCS` of the reference grid (with its observer, as sunpy gives it)."""
        return sunpy.map.Map(np.zeros(self.loop_mask.shape), self.truth_header).wcs

    def true_timelag(self, a, b):
        r"""
        The ground-truth time lag of the pair (A, B) on the reference grid.

        :math:`(\phi_B - \phi_A)\,\tau(x, y)`: positive when B peaks after A.

        Parameters
        ----------
        a, b : int or astropy.units.Quantity
            Wavelengths of channels A and B (Å if plain numbers).

        Returns
        -------
        numpy.ndarray
            Reference-grid lags in seconds, NaN outside the loops.
        """
        return _true_timelag(self.arcade, a, b)

    def true_timelag_map(self, a, b):
        """
        `true_timelag` as a `~sunpy.map.GenericMap` on the reference grid (unit s).

        Parameters
        ----------
        a, b : int or astropy.units.Quantity

        Returns
        -------
        `~sunpy.map.GenericMap`
        """
        meta = self.truth_header.copy()
        meta["bunit"] = "s"
        return sunpy.map.Map(self.true_timelag(a, b), meta)


@u.quantity_input
def make_full_disk_observation(directory=None, *, channels=STANDARD_CHANNELS, duration: u.s = 2 * u.h,
                               cadence: u.s = 12 * u.s, shape=(512, 512), plate_scale: u.arcsec = 4.8 * u.arcsec,
                               bad_quality=1, rotation_model="howard", seed=0):
    """
    Make a synthetic full-disk AIA level-1 observation of a rotating active region with cooling loops.

    See the module docstring for the model and the reference grid of the ground truth. Frame times,
    exposures, pointing and noise are drawn from a generator seeded with ``(seed, wavelength)``, the
    flagged frames from one seeded with ``(seed, wavelength, 1)`` and the loops from one seeded with
    ``(seed, 0)``: the same ``seed`` gives the same observation, a channel is the same whichever other
    channels are asked for, and the frames that are not flagged do not depend on ``bad_quality``.

    Parameters
    ----------
    directory : str or pathlib.Path, optional
        If given, write the frames to ``directory/<channel>/aia.lev1.<channel>A_<T_OBS>.image_lev1.fits``
        (JSOC's names, e.g. ``171/aia.lev1.171A_2011-02-15T00_00_01.34Z.image_lev1.fits``), and keep
        no data in memory. Each channel's folder is written as a whole, atomically: it replaces the
        folder of an earlier synthetic observation, but never a folder that holds anything else. By
        default the frames are only kept in memory.
    channels : iterable of int
        Channels (Å), among `STANDARD_CHANNELS`.
    duration, cadence : astropy.units.Quantity
        ``duration / cadence`` frames per channel.
    shape : tuple of int
        ``(n, n)`` pixels: square, the whole disk inside.
    plate_scale : astropy.units.Quantity
        Of the binned AIA pixels; the frames' ``CDELT`` is ``plate_scale`` times AIA's
        0.599489"/0.6" (level 1.5 rounds it to ``plate_scale``).
    bad_quality : int
        Frames per channel flagged in ``QUALITY`` (each with a fault of `QUALITY_FAULTS` in its image),
        at random times, never the first or last frame.
    rotation_model : str
        The differential-rotation model of the active region (see
        `~sunpy.coordinates.propagate_with_solar_surface`).
    seed : int
        Seed of the random generators.

    Returns
    -------
    FullDiskObservation

    Raises
    ------
    ValueError
        If the channels are unknown or repeated, the observation holds fewer than ``bad_quality + 2``
        frames, the frame is not square or does not hold the disk, the plate scale is too coarse for
        the active region (over 20"), ``bad_quality`` is negative, or the observation is so long
        (days) that the active region rotates off the disk.
    ~sunpy_timelag.exceptions.OutputPathError
        If a channel's folder exists and holds anything but the frames of a synthetic observation.
    """
    channels = tuple(_wavelength(c) for c in channels)
    if not channels or len(set(channels)) != len(channels):
        raise ValueError(f"channels must be distinct, got {channels}")
    cadence = cadence.to_value(u.s)
    n_frames = int(duration.to_value(u.s) / cadence + 1e-9) if cadence > 0 else 0
    bad_quality = int(bad_quality)
    if bad_quality < 0:
        raise ValueError(f"bad_quality must be a number of frames (0 or more), got {bad_quality}")
    if n_frames < bad_quality + 2:
        raise ValueError(f"duration must hold at least bad_quality + 2 = {bad_quality + 2} frames of positive cadence")
    shape = tuple(int(n) for n in shape)
    scale = plate_scale.to_value(u.arcsec)
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(f"shape must be square (n, n), as AIA's full-disk frames are, got {shape}")
    if not 0 < scale <= min(REGION_SIZE) / 12:
        raise ValueError(f"plate_scale must be positive and at most {min(REGION_SIZE) / 12:g} arcsec, "
                         f"got {plate_scale}")
    if shape[0] * scale / 2 < 1.05 * sun.angular_radius(START).to_value(u.arcsec) + max(map(abs, SUN_OFFSET)):
        raise ValueError(f"{shape[0]} pixels of {scale:g} arcsec do not hold the solar disk")

    cdelt = scale * AIA_PLATE_SCALE / 0.6
    crpix = (shape[0] + 1) / 2 + np.array(SUN_OFFSET) / cdelt
    reference_time = START + duration / 2
    observations = {c: _draw_frames(c, n_frames, cadence, crpix, cdelt, shape, bad_quality, seed) for c in channels}
    templates = {c: _constant_header(c, shape, cdelt) for c in channels}
    first = _header(templates[channels[0]], observations[channels[0]]["values"][0])
    truth = _reference_grid(first, shape, reference_time)
    ny, nx = truth.data.shape
    arcade = LoopArcade.random((ny, nx), n_frames * cadence + max(c.offset for c in _CHANNELS.values()),
                               np.random.default_rng([seed, 0]))
    points = np.array(BRIGHT_POINTS) * [nx, ny]
    scene = _Scene(arcade, points, truth, observations, shape, cdelt, crpix, rotation_model)

    def make(c):  # NumPy and astropy's compression release the GIL: channels in threads
        frames = scene.frames(c, np.random.default_rng([seed, c]), observations[c])
        if directory is None:
            return np.stack(list(frames)), []
        return None, _write(Path(directory) / str(c), c, templates[c], observations[c], frames)

    with ThreadPoolExecutor(min(len(channels), os.cpu_count() or 1)) as pool:
        made = dict(zip(channels, pool.map(make, channels), strict=True))
    data, files = {c: m[0] for c, m in made.items()}, {c: m[1] for c, m in made.items()}
    return FullDiskObservation(
        channels=channels, times={c: START + o["seconds"] * u.s for c, o in observations.items()},
        exposure_time={c: o["exposure"] * u.s for c, o in observations.items()},
        quality={c: o["quality"] for c, o in observations.items()}, files=files,
        data=data if directory is None else None, reference_time=reference_time,
        bottom_left=truth.pixel_to_world(0 * u.pix, 0 * u.pix),
        top_right=truth.pixel_to_world((nx - 1) * u.pix, (ny - 1) * u.pix), truth_header=truth.meta,
        loop_mask=arcade.mask, arcade=arcade, bright_points=truth.pixel_to_world(*points.T * u.pix),
        _templates=templates, _values={c: o["values"] for c, o in observations.items()},
    )


def _draw_frames(wavelength, n_frames, cadence, crpix, cdelt, shape, bad_quality, seed):
    """Times, exposures, pointing, roll, faults and header values of one channel's frames."""
    channel = _CHANNELS[wavelength]
    rng = np.random.default_rng([seed, wavelength])
    seconds = channel.offset + cadence * np.arange(n_frames) + rng.normal(0, TIME_JITTER, n_frames)
    seconds = np.sort(np.round(seconds, 2))
    exposure = channel.exposure * (1 + rng.normal(0, EXPOSURE_SCATTER, n_frames))
    aec = rng.random(n_frames) < AEC_FRACTION
    aec[rng.integers(n_frames)] = True  # at least one
    exposure[aec] *= rng.uniform(0.25, 0.6, aec.sum())
    exposure = np.round(exposure, 6)  # as written in EXPTIME
    pointing = crpix + rng.normal(0, POINTING_JITTER / cdelt, (n_frames, 2))
    roll = ROLL + ROLL_DRIFT * np.sin(2 * np.pi * seconds / 86400 + rng.uniform(0, 2 * np.pi))
    roll = np.round(roll, 6)
    pointing = np.round(pointing, 4)

    bad = np.random.default_rng([seed, wavelength, 1])
    faults = np.full(n_frames, -1)
    flagged = 1 + bad.choice(n_frames - 2, bad_quality, replace=False)
    faults[flagged] = (np.arange(bad_quality) + wavelength) % len(QUALITY_FAULTS)
    quality = np.array([0 if f < 0 else QUALITY_FAULTS[f][1] for f in faults])
    values = _frame_values(START + seconds * u.s, exposure, pointing, roll, cdelt, faults, shape)
    return {"seconds": seconds, "exposure": exposure, "crpix": pointing, "roll": roll, "faults": faults,
            "quality": quality, "values": values}


def _frame_values(times, exposure, crpix, roll, cdelt, faults, shape):
    """The header keywords that change from frame to frame, one dict per frame."""
    # The Earth-based observer changes slowly: interpolate a few ephemeris points.
    seconds = (times - times[0]).to_value(u.s)
    nodes = np.linspace(0, seconds[-1], 2 + len(times) // 300)
    node_times = times[0] + nodes * u.s
    b0 = np.interp(seconds, nodes, sun.B0(node_times).to_value(u.deg))
    l0 = np.interp(seconds, nodes, np.unwrap(sun.L0(node_times).to_value(u.deg), period=360)) % 360
    dsun = np.interp(seconds, nodes, sun.earth_distance(node_times).to_value(u.m))
    rsun = np.degrees(np.arcsin(RSUN_REF / dsun)) * 3600
    t_obs = Time(times, precision=2).isot
    date_obs = Time(times - exposure * u.s / 2, precision=2).isot
    total = shape[0] * shape[1]
    values = []
    for i in range(len(times)):
        frame = {
            "T_OBS": f"{t_obs[i]}Z", "DATE-OBS": str(date_obs[i]), "EXPTIME": float(exposure[i]),
            "CRPIX1": float(crpix[i, 0]), "CRPIX2": float(crpix[i, 1]), "CROTA2": float(roll[i]),
            "INST_ROT": float(roll[i]), "X0_MP": float(crpix[i, 0] - 1), "Y0_MP": float(crpix[i, 1] - 1),
            "DSUN_OBS": round(float(dsun[i]), 1), "RSUN_OBS": round(float(rsun[i]), 6),
            "R_SUN": round(float(rsun[i] / cdelt), 6), "HGLT_OBS": round(float(b0[i]), 6),
            "CRLT_OBS": round(float(b0[i]), 6), "CRLN_OBS": round(float(l0[i]), 6),
            "QUALITY": 0, "AISTATE": "CLOSED", "ACS_ECLP": "NO",
            "MISSVALS": 0, "DATAVALS": total, "PERCENTD": 100.0,
        }
        if faults[i] >= 0:
            _, quality, keywords = QUALITY_FAULTS[faults[i]]
            frame.update(QUALITY=quality, **keywords)
        if faults[i] == 1:
            missing = _missing_rows(shape[0]).stop - _missing_rows(shape[0]).start
            frame.update(MISSVALS=missing * shape[1], DATAVALS=total - missing * shape[1],
                         PERCENTD=round(100 * (1 - missing / shape[0]), 3))
        values.append(frame)
    return values


def _constant_header(wavelength, shape, cdelt):
    channel = _CHANNELS[wavelength]
    return fits.Header({
        "XTENSION": "IMAGE", "BITPIX": 16, "NAXIS": 2, "NAXIS1": shape[1], "NAXIS2": shape[0], "PCOUNT": 0,
        "GCOUNT": 1, "TELESCOP": "SDO/AIA", "INSTRUME": channel.instrument, "DETECTOR": "AIA",
        "CAMERA": int(channel.instrument[-1]), "ORIGIN": ORIGIN,
        "WAVELNTH": wavelength, "WAVEUNIT": "angstrom", "WAVE_STR": f"{wavelength}_THIN", "IMG_TYPE": "LIGHT",
        "LVL_NUM": 1.0, "PIXLUNIT": "DN", "BLANK": BLANK,
        "CTYPE1": "HPLN-TAN", "CTYPE2": "HPLT-TAN", "CUNIT1": "arcsec", "CUNIT2": "arcsec",
        "CDELT1": float(cdelt), "CDELT2": float(cdelt), "CRVAL1": 0.0, "CRVAL2": 0.0, "IMSCL_MP": AIA_PLATE_SCALE,
        "HGLN_OBS": 0.0, "RSUN_REF": RSUN_REF, "DSUN_REF": 149597870691.0,
        "ACS_MODE": "SCIENCE", "ACS_SUNP": "YES", "ACS_SAFE": "NO", "AECMODE": "ON",
        "TOTVALS": shape[0] * shape[1],
        "COMMENT": "Synthetic data: sunpy_timelag.data.make_full_disk_observation",
    })


def _header(template, values):
    header = template.copy()
    header.update(values)
    return header


def _reference_grid(first_header, shape, reference_time):
    """The reference grid: a map of zeros (see the module docstring)."""
    from sunpy.util.metadata import MetaDict

    from ..aia.register import Registration

    first = sunpy.map.Map(np.zeros(shape, np.float32), first_header)
    meta = MetaDict(Registration.from_map(first).meta)
    exposure = first_header["EXPTIME"]
    at_reference = _frame_values(Time([reference_time]), np.array([exposure]), np.zeros((1, 2)), np.zeros(1),
                                 meta["cdelt1"], np.array([-1]), shape)[0]
    for key in ("T_OBS", "DATE-OBS", "DSUN_OBS", "RSUN_OBS", "R_SUN", "HGLT_OBS", "CRLT_OBS", "CRLN_OBS"):
        meta[key.lower()] = at_reference[key]
    grid = sunpy.map.Map(np.zeros((meta["naxis2"], meta["naxis1"]), np.float32), meta)
    centre = grid.world_to_pixel(SkyCoord(*REGION_CENTRE * u.arcsec, frame=grid.coordinate_frame))
    size = np.rint(np.array(REGION_SIZE) / meta["cdelt1"]).astype(int)
    x0, y0 = (np.rint([centre.x.value, centre.y.value]) - (size - 1) // 2).astype(int)
    corners = grid.pixel_to_world([x0, x0 + size[0] - 1] * u.pix, [y0, y0 + size[1] - 1] * u.pix)
    truth = grid.submap(corners[0], top_right=corners[1])
    if truth.data.shape != (size[1], size[0]):  # submap rounds pixel centres: exact
        raise RuntimeError(f"reference grid of shape {truth.data.shape}, expected {tuple(size[::-1])}")
    return truth


class _Scene:
    """The count rates of one observation's frames: the disk and the rotating active region."""

    def __init__(self, arcade, points, truth, observations, shape, cdelt, crpix, rotation_model):
        self.arcade, self.points, self.shape, self.cdelt, self.crpix = arcade, points, shape, cdelt, crpix
        ny, nx = arcade.loop.shape
        header = truth.meta
        # The active region's box on the tangent plane at the reference time (level 1.5 is north up,
        # CRVAL = 0: its intermediate coordinates), with room for the halo and the bright points,
        # grown by how far the surface rotates until the first or last frame.
        margin = 0.25 * max(nx, ny)
        box = np.array([[-margin, nx - 1 + margin], [-margin, ny - 1 + margin]])
        box = (box + 1 - np.array([[header["crpix1"]], [header["crpix2"]]])) * header["cdelt1"]
        seconds = np.concatenate([o["seconds"] for o in observations.values()])
        reference = (truth.reference_date - START).to_value(u.s)
        drift = 16 * np.abs(seconds - reference).max() / 3600 + 2 * cdelt  # < 16"/h on the disk
        box += [-drift, drift]
        # The frame pixels that can see the box, at the nominal pointing and roll.
        corners = np.array([[u_, v_] for u_ in box[0] for v_ in box[1]])
        angle = np.deg2rad(ROLL)
        inverse = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
        pixels = corners / cdelt @ inverse.T + crpix - 1
        low = np.clip(np.floor(pixels.min(axis=0)) - 2, 0, None).astype(int)
        high = np.minimum(np.ceil(pixels.max(axis=0)) + 3, shape[::-1]).astype(int)
        self.window = np.s_[low[1]:high[1], low[0]:high[0]]
        y, x = np.mgrid[self.window]
        self.x, self.y = x.ravel().astype(float), y.ravel().astype(float)
        # The tangent-plane box of those pixels in every frame.
        planes = [plane_coordinates(self.x[[0, -1, 0, -1]], self.y[[0, 0, -1, -1]], crpix=o["crpix"],
                                    cdelt=cdelt, crota2=o["roll"]) for o in observations.values()]
        u_all = np.concatenate([p[0].ravel() for p in planes])
        v_all = np.concatenate([p[1].ravel() for p in planes])
        spacing = 2 * cdelt
        self.start = seconds.min()
        self.tracker = SurfaceTracker(
            truth, START + self.start * u.s, START + seconds.max() * u.s,
            (u_all.min() - spacing, u_all.max() + spacing), (v_all.min() - spacing, v_all.max() + spacing),
            spacing=spacing, rotation_model=rotation_model,
        )
        # The disk at the nominal pointing, in units of the disk-centre rate, and its gradient.
        rows, cols = np.indices(shape, dtype=float)
        u_, v_ = plane_coordinates(cols, rows, crpix=crpix, cdelt=cdelt, crota2=0.0)
        rsun = sun.angular_radius(truth.reference_date).to_value(u.arcsec)
        self.disk = disk_profile(np.hypot(u_, v_) / rsun, limb_width=cdelt / rsun).astype(np.float32)
        self.disk_dy, self.disk_dx = np.gradient(self.disk)

    def active_region(self, wavelength, seconds, crpix, roll):
        """``(n, n_window)`` count rates (DN/s) of the active region in the window of ``n`` frames."""
        channel = _CHANNELS[wavelength]
        u_, v_ = plane_coordinates(self.x, self.y, crpix=crpix, cdelt=self.cdelt, crota2=roll)
        x, y = self.tracker(u_, v_, seconds - self.start)
        geometry = self.arcade.geometry
        halo = np.clip((geometry.halo(x, y) - HALO_CUTOFF) / (1 - HALO_CUTOFF), 0, None)
        rate = channel.background * halo
        for px, py in self.points:
            near = (np.abs(x - px) < 6 * BRIGHT_POINT_WIDTH) & (np.abs(y - py) < 6 * BRIGHT_POINT_WIDTH)
            distance2 = (x[near] - px) ** 2 + (y[near] - py) ** 2
            rate[near] += channel.background * BRIGHT_POINT_PEAK * np.exp(-0.5 * distance2 / BRIGHT_POINT_WIDTH**2)
        ny, nx = geometry.bounds
        patch = (x >= -0.5) & (x < nx - 0.5) & (y >= -0.5) & (y < ny - 0.5)
        times = np.broadcast_to(seconds[:, None], x.shape)[patch]
        rate[patch] += channel.loops * self.arcade.light_curves_at(times, channel.cooling, x[patch], y[patch])
        return rate

    def frames(self, wavelength, rng, observation):
        """
        The ``int16`` frames of one channel, one at a time.

        The noise of a frame is a window, at a random offset (a different one for every frame), of a
        pool of Gaussian deviates four frames long: each pixel's noise is independent from frame to
        frame, at a fraction of the cost of drawing every frame's.
        """
        channel = _CHANNELS[wavelength]
        binning = self.cdelt / AIA_PLATE_SCALE
        dn_per_photon = 12398.4 / wavelength / 3.65 / 17.7  # photon energy (eV) / 3.65 eV per electron / gain
        gain, read_noise = np.float32(dn_per_photon / binning**2), np.float32((READ_NOISE / binning) ** 2)
        seconds, exposure, crpix, roll = (observation[k] for k in ("seconds", "exposure", "crpix", "roll"))
        size = self.disk.size
        pool = rng.standard_normal(4 * size, dtype=np.float32)
        offsets = rng.choice(3 * size, len(seconds), replace=False)
        window = np.zeros(self.shape, bool)
        window[self.window] = True
        counts = np.empty(self.shape, np.float32)
        sigma = np.empty(self.shape, np.float32)
        for start in range(0, len(seconds), BLOCK):
            block = slice(start, start + BLOCK)
            region = self.active_region(wavelength, seconds[block], crpix[block], roll[block])
            for j, extra in zip(range(start, start + len(region)), region, strict=True):
                scale = np.float32(channel.background * exposure[j])
                dx, dy = (crpix[j] - self.crpix) * scale
                np.multiply(self.disk, scale, out=counts)
                counts -= dx * self.disk_dx
                counts -= dy * self.disk_dy
                counts[window] += extra * np.float32(exposure[j])
                np.maximum(counts, 0, out=counts)
                np.multiply(counts, gain, out=sigma)
                sigma += read_noise
                np.sqrt(sigma, out=sigma)
                sigma *= pool[offsets[j]:offsets[j] + size].reshape(self.shape)
                counts += sigma
                np.rint(counts, out=counts)
                np.clip(counts, BLANK + 1, 2**15 - 1, out=counts)
                yield _fault(counts.astype(np.int16), observation["faults"][j])


def _fault(image, fault):
    """The image as the fault ``QUALITY_FAULTS[fault]`` spoils it (-1: none)."""
    if fault == 0:  # ISS loop open: displaced by a few pixels
        return np.roll(image, (2, -3), axis=(0, 1))
    if fault == 1:  # an eighth of the rows missing
        image = image.copy()
        image[_missing_rows(image.shape[0])] = BLANK
        return image
    if fault == 2:  # eclipse
        return np.rint(0.2 * image).astype(np.int16)
    return image


def _missing_rows(n):
    """The rows missing from a frame of ``n`` rows with the fault "an eighth of the pixels missing"."""
    return slice(n // 2 - n // 16, n // 2 + n // 16)


def _write(folder, wavelength, template, observation, frames):
    """
    Write a channel's folder, atomically as a whole: the frames as JSOC serves them (an empty primary
    HDU, the image Rice-compressed in HDU 1).
    """
    names = [f"aia.lev1.{wavelength}A_{v['T_OBS'].replace(':', '_')}.image_lev1.fits" for v in observation["values"]]

    def write(temporary):
        os.mkdir(temporary)
        hdu = None
        for name, values, image in zip(names, observation["values"], frames, strict=True):
            if hdu is None:  # one HDU for all frames: astropy's header set-up costs more than the compression
                hdu = fits.CompImageHDU(image, header=template, compression_type="RICE_1",
                                        tile_shape=(TILE_ROWS, image.shape[1]))
                hdulist = fits.HDUList([fits.PrimaryHDU(), hdu])
            else:
                hdu.data = image
            for key, value in values.items():
                if hdu.header.get(key) != value:
                    hdu.header[key] = value
            hdulist.writeto(os.path.join(temporary, name), output_verify="ignore")

    write_atomically(folder, write, check_existing=functools.partial(_check_replaceable, wavelength=wavelength))
    return [folder / name for name in names]


def _check_replaceable(folder, *, wavelength):
    """Refuse to replace ``folder`` unless it holds only synthetic frames of the channel."""
    if not os.path.isdir(folder):
        raise OutputPathError(f"refusing to replace {folder}: it is not a folder of synthetic frames")
    for entry in sorted(os.listdir(folder)):
        if not (_FILE_NAME.fullmatch(entry) and entry.startswith(f"aia.lev1.{wavelength}A_")
                and _origin(os.path.join(folder, entry)) == ORIGIN):
            raise OutputPathError(f"refusing to replace {folder}: {entry} is not a synthetic frame of "
                                  f"make_full_disk_observation; write the observation to another directory")


def _origin(path):
    """``ORIGIN`` in HDU 1 of a FITS file; `None` for anything else."""
    try:
        return fits.getval(path, "ORIGIN", ext=1)
    except (OSError, IndexError, KeyError):
        return None

r"""
A synthetic, AIA-like observation of a cooling active region with a known ground truth.

The observation imitates a 4x4-binned cutout of AIA level 1 data around an on-disk active region:
six EUV channels, each with its own position in the 12 s AIA cycle, exposure times that scatter a
little (and a few short, AEC-like ones), a slight pointing jitter, photon noise, ``int16`` data and
the header keywords that `sunpy.map.Map` needs to build an `~sunpy.map.sources.AIAMap` with correct
coordinates. Frame :math:`j` of channel :math:`c`, taken at :math:`t_j` (its ``T_OBS``) with
exposure :math:`E_j` and pointing offset :math:`\delta_j` (in pixels), holds

.. math::

    D_c(\mathbf{p}, t_j) = E_j\, I_c(\mathbf{p} - \delta_j, t_j) + n, \qquad
    I_c = B_c\, b(\mathbf{p}) + R_c\, s_{\phi_c}(\mathbf{p}, t),

in DN, where :math:`b` is the diffuse background pattern, :math:`s_\phi` the loop light curves of
`~sunpy_timelag.data._arcade.LoopArcade` (time-shifted by :math:`\phi_c \tau(\mathbf{p})`),
:math:`B_c, R_c` the background and loop count rates of the channel (DN/s), :math:`\phi_c` its
cooling fraction (0 for 94 Å up to 1 for 131 Å) and :math:`n` Gaussian noise of variance
:math:`g_c D / 16 + \sigma_r^2`: the photon noise of 16 summed pixels (:math:`g_c` DN per photon)
and the read noise. The shift by :math:`\delta_j` is applied to first order,
:math:`I(\mathbf{p} - \delta) \simeq I(\mathbf{p}) - \delta \cdot \nabla I`. The time lag of the
pair (A, B) is therefore :math:`(\phi_B - \phi_A)\,\tau(\mathbf{p})` in every loop pixel.
"""
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import astropy.units as u
import numpy as np
import sunpy.map
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS
from sunpy.coordinates import sun

from ..analysis import HOT_TO_COOL
from ._arcade import LoopArcade
from ._fits import header_string, template_cards, write_fits

__all__ = ["STANDARD_CHANNELS", "SyntheticObservation", "make_synthetic_observation"]

#: Start of the synthetic observation.
START = Time("2011-02-15T00:00:00", scale="utc")
#: Helioprojective coordinates (arcsec) of the centre of the field of view.
FIELD_CENTRE = (-400.0, 100.0)
#: Plate scale (arcsec per pixel): the 0.6 arcsec AIA pixels binned 4x4.
PLATE_SCALE = 2.4
#: Roll angle (deg).
CROTA2 = 0.05
#: AIA's reference solar radius (m).
RSUN_REF = 696000000.0
#: Scatter of T_OBS about the nominal cadence (s), before rounding to AIA's 0.01 s.
TIME_JITTER = 0.03
#: Scatter of the pointing (CRPIX) from frame to frame (pixels).
POINTING_JITTER = 0.03
#: Relative scatter of the exposure times.
EXPOSURE_SCATTER = 2e-3
#: Fraction of frames with a shortened, AEC-like exposure (25-60% of nominal).
AEC_FRACTION = 0.02
#: Read noise of a binned pixel (DN).
READ_NOISE = 0.3


@dataclass(frozen=True)
class _Channel:
    instrument: str  # INSTRUME: the AIA telescope that hosts the filter
    exposure: float  # nominal EXPTIME, s
    offset: float  # T_OBS of the first frame, s after START (its place in the AIA cycle)
    background: float  # B_c, DN/s
    loops: float  # R_c, DN/s
    cooling: float  # phi_c


_CHANNELS = {
    94: _Channel("AIA_4", 2.9, 5.57, 2.0, 15.0, 0.0),
    335: _Channel("AIA_1", 2.9, 3.57, 8.0, 40.0, 0.15),
    211: _Channel("AIA_2", 2.9, 1.82, 120.0, 400.0, 0.45),
    193: _Channel("AIA_2", 2.0, 7.84, 500.0, 1200.0, 0.6),
    171: _Channel("AIA_3", 2.0, 1.34, 400.0, 1500.0, 0.8),
    131: _Channel("AIA_1", 2.9, 9.57, 20.0, 100.0, 1.0),
}
#: The six coronal EUV channels of AIA (Å), from hot to cool: the order in which loops cool through them
#: (`sunpy_timelag.HOT_TO_COOL`).
STANDARD_CHANNELS = HOT_TO_COOL


@dataclass(frozen=True, repr=False)
class SyntheticObservation:
    """
    A synthetic AIA observation and its ground truth; made by `make_synthetic_observation`.

    All per-channel attributes are dicts keyed by the wavelength in Å (an `int`).

    Attributes
    ----------
    channels : tuple of int
        The channels, in the order asked for.
    times : dict of astropy.time.Time
        ``T_OBS`` (mid-exposure, UTC) of every frame, ascending.
    data : dict of numpy.ndarray
        ``(n_time, ny, nx)`` ``int16`` images in DN, as written to the files.
    headers : dict of list of astropy.io.fits.Header
        One AIA-like header per frame (parsed on first access: thousands take a few seconds).
    exposure_time : dict of astropy.units.Quantity
        ``EXPTIME`` of every frame.
    files : dict of list of pathlib.Path
        The FITS files, sorted by time; empty lists for an observation kept in memory.
    loop_mask : numpy.ndarray
        ``(ny, nx)`` boolean: the loop pixels, where the time lags are defined.
    reference_coordinate : astropy.coordinates.SkyCoord
        Centre of the field of view, (-400", 100") at the start of the observation.
    bottom_left, top_right : astropy.coordinates.SkyCoord
        Corners of the box through the centres of the outermost loop pixels: ``submap`` with them
        keeps all the loop pixels.
    arcade : sunpy_timelag.data._arcade.LoopArcade
        The model of the loop emission.
    header_texts : dict of list of str
        The headers as written to the files.
    """

    channels: tuple
    times: dict
    data: dict
    exposure_time: dict
    files: dict
    loop_mask: np.ndarray
    reference_coordinate: SkyCoord
    bottom_left: SkyCoord
    top_right: SkyCoord
    arcade: LoopArcade
    header_texts: dict = field(repr=False)

    @cached_property
    def headers(self):
        """One `~astropy.io.fits.Header` per frame, parsed from ``header_texts`` on first access."""
        return {c: [fits.Header.fromstring(text) for text in texts] for c, texts in self.header_texts.items()}

    def __repr__(self):
        frames = {c: len(t) for c, t in self.times.items()}
        files = self.files[self.channels[0]]
        where = f"files in {files[0].parent.parent}" if files else "in memory"
        return f"<SyntheticObservation of {self.loop_mask.shape} pixels, frames {frames}, {where}>"

    def true_timelag(self, a, b):
        r"""
        The ground-truth time lag of the channel pair (A, B) in every pixel.

        :math:`(\phi_B - \phi_A)\,\tau(x, y)`: positive when B peaks after A (cooling from A to B),
        antisymmetric in (A, B).

        Parameters
        ----------
        a, b : int or astropy.units.Quantity
            Wavelengths of channels A and B (Å if plain numbers).

        Returns
        -------
        numpy.ndarray
            ``(ny, nx)`` lags in seconds, NaN outside the loops.
        """
        return _true_timelag(self.arcade, a, b)

    def model_rate(self, channel, time=None):
        """
        The noise-free count rate of a channel, at the nominal pointing.

        Parameters
        ----------
        channel : int or astropy.units.Quantity
            Wavelength (Å if a plain number).
        time : astropy.time.Time, optional
            When to evaluate it; the frame times of the channel by default.

        Returns
        -------
        numpy.ndarray
            ``(n_time, ny, nx)`` in DN/s.
        """
        channel = _wavelength(channel)
        time = self.times[channel] if time is None else Time(time)
        return _rate(_CHANNELS[channel], self.arcade, np.atleast_1d((time - START).to_value(u.s)))


@u.quantity_input
def make_synthetic_observation(directory=None, *, channels=STANDARD_CHANNELS, duration: u.s = 2 * u.h,
                               cadence: u.s = 12 * u.s, shape=(64, 64), drop_frame=False, seed=0):
    """
    Make a synthetic AIA observation of cooling coronal loops, with a known time lag in every pixel.

    See the module docstring for the model. Frame times, exposures, pointing and noise are drawn
    from a generator seeded with ``(seed, wavelength)`` and the loops from one seeded with
    ``(seed, 0)``: the same ``seed`` gives the same observation, and a channel is the same whichever
    other channels are asked for.

    Parameters
    ----------
    directory : str or pathlib.Path, optional
        If given, write one FITS file per frame to ``directory/<channel>/aia_synth_<channel>_<T_OBS>.fits``
        (e.g. ``171/aia_synth_171_2011-02-15T000001_34.fits``), each atomically; files of the same
        name are replaced. By default the observation is only kept in memory.
    channels : iterable of int
        Channels (Å), among `STANDARD_CHANNELS`.
    duration : astropy.units.Quantity
        Length of the observation; ``duration / cadence`` frames per channel.
    cadence : astropy.units.Quantity
        Time between two frames of a channel.
    shape : tuple of int
        ``(ny, nx)`` pixels of 2.4 arcsec, centred on (-400", 100").
    drop_frame : bool
        Leave out the middle frame of the 171 Å sequence (of the first channel if 171 Å is not
        asked for), as if it were missing from the archive.
    seed : int
        Seed of the random generators.

    Returns
    -------
    SyntheticObservation
    """
    channels = tuple(_wavelength(c) for c in channels)
    if not channels or len(set(channels)) != len(channels):
        raise ValueError(f"channels must be distinct, got {channels}")
    cadence = cadence.to_value(u.s)
    n_frames = int(duration.to_value(u.s) / cadence + 1e-9) if cadence > 0 else 0
    if n_frames < 2:
        raise ValueError("duration must hold at least two frames of positive cadence")
    shape = tuple(int(n) for n in shape)
    if len(shape) != 2 or min(shape) < 16:
        raise ValueError(f"shape must be (ny, nx) with at least 16 pixels a side, got {shape}")
    arcade = LoopArcade.random(shape, n_frames * cadence + max(c.offset for c in _CHANNELS.values()),
                               np.random.default_rng([seed, 0]))
    crpix = _reference_pixel(shape)
    dropped = (171 if 171 in channels else channels[0]) if drop_frame else None

    times, data, headers, exposure_time, files = {}, {}, {}, {}, {}
    for wavelength in channels:
        keep = np.arange(n_frames) != (n_frames // 2 if wavelength == dropped else -1)
        rng = np.random.default_rng([seed, wavelength])
        seconds, exposure, pointing, data[wavelength] = (x[keep] for x in _observe(wavelength, n_frames,
                                                                                   cadence, arcade, rng))
        times[wavelength] = START + seconds * u.s
        exposure_time[wavelength] = exposure * u.s
        template = template_cards(_constant_header(wavelength), shape)
        headers[wavelength] = _frame_headers(template, times[wavelength], exposure, crpix + pointing)
        files[wavelength] = [] if directory is None else _write(Path(directory) / str(wavelength), wavelength,
                                                                times[wavelength], headers[wavelength],
                                                                data[wavelength])

    reference = _reference_map(channels[0], shape, crpix)
    bottom_left, top_right = _bounding_box(reference, arcade.mask)
    return SyntheticObservation(
        channels=channels, times=times, data=data, header_texts=headers, exposure_time=exposure_time,
        files=files, loop_mask=arcade.mask, arcade=arcade, bottom_left=bottom_left, top_right=top_right,
        reference_coordinate=SkyCoord(*FIELD_CENTRE * u.arcsec, frame=reference.coordinate_frame))


def _wavelength(channel):
    wavelength = round(u.Quantity(channel, u.AA).to_value(u.AA))
    if wavelength not in _CHANNELS:
        raise ValueError(f"{channel} is not one of the channels {STANDARD_CHANNELS} (Å)")
    return wavelength


def _true_timelag(arcade, a, b):
    r"""The lag of the pair (A, B) in each pixel of ``arcade``: :math:`(\phi_B - \phi_A)\,\tau`, s (NaN off loops)."""
    return (_CHANNELS[_wavelength(b)].cooling - _CHANNELS[_wavelength(a)].cooling) * arcade.cooling_time


def _rate(channel, arcade, seconds):
    loops = arcade.light_curves(seconds, channel.cooling)
    return channel.background * arcade.background + channel.loops * loops


def _observe(wavelength, n_frames, cadence, arcade, rng):
    """Times (s after START), exposure times (s), pointing offsets (px, x and y) and DN of one channel."""
    channel = _CHANNELS[wavelength]
    seconds = channel.offset + cadence * np.arange(n_frames) + rng.normal(0, TIME_JITTER, n_frames)
    seconds = np.sort(np.round(seconds, 2))
    exposure = channel.exposure * (1 + rng.normal(0, EXPOSURE_SCATTER, n_frames))
    aec = rng.random(n_frames) < AEC_FRACTION
    exposure[aec] *= rng.uniform(0.25, 0.6, aec.sum())
    exposure = np.round(exposure, 6)  # as written in EXPTIME
    pointing = rng.normal(0, POINTING_JITTER, (n_frames, 2))

    rate = _rate(channel, arcade, seconds)
    rate_dy, rate_dx = np.gradient(rate, axis=(1, 2))
    rate -= pointing[:, :1, None] * rate_dx + pointing[:, 1:, None] * rate_dy
    counts = np.clip(rate, 0, None) * exposure[:, None, None]
    dn_per_photon = 12398.4 / wavelength / 3.65 / 17.7  # photon energy (eV) / 3.65 eV per electron / gain
    counts += np.sqrt(dn_per_photon * counts / 16 + READ_NOISE**2) * rng.standard_normal(counts.shape)
    data = np.clip(np.rint(counts), -32768, 32767).astype(np.int16)
    return seconds, exposure, pointing, data


def _constant_header(wavelength):
    return fits.Header({
        "TELESCOP": "SDO/AIA", "INSTRUME": _CHANNELS[wavelength].instrument, "DETECTOR": "AIA",
        "WAVELNTH": wavelength, "WAVEUNIT": "angstrom", "IMG_TYPE": "LIGHT",
        "LVL_NUM": 1.0, "QUALITY": 0, "BUNIT": "DN", "PIXLUNIT": "DN",
        "CTYPE1": "HPLN-TAN", "CTYPE2": "HPLT-TAN", "CUNIT1": "arcsec", "CUNIT2": "arcsec",
        "CDELT1": PLATE_SCALE, "CDELT2": PLATE_SCALE, "CRVAL1": 0.0, "CRVAL2": 0.0, "CROTA2": CROTA2,
        "HGLN_OBS": 0.0, "RSUN_REF": RSUN_REF,
        "COMMENT": "Synthetic data: sunpy_timelag.data.make_synthetic_observation",
    })


def _reference_pixel(shape):
    """CRPIX1, CRPIX2 that put the centre of the field at FIELD_CENTRE, with CRVAL at disk centre."""
    header = _constant_header(171)
    header.update(CRPIX1=0.0, CRPIX2=0.0)
    x, y = WCS(header).world_to_pixel_values(*(np.array(FIELD_CENTRE) / 3600))
    return (np.array(shape[::-1]) - 1) / 2 - np.array([x, y])


def _frame_headers(template, times, exposure, crpix):
    """Header texts of frames at ``times`` (T_OBS) with EXPTIME ``exposure`` (s) and ``crpix``."""
    t_obs = Time(times, precision=2).isot
    date_obs = Time(times - exposure * u.s / 2, precision=2).isot
    # The Earth-based observer changes slowly: interpolate a few ephemeris points.
    nodes = times[0] + np.linspace(0, (times[-1] - times[0]).to_value(u.s), 2 + len(times) // 300) * u.s
    seconds = (times - times[0]).to_value(u.s)
    node_seconds = (nodes - times[0]).to_value(u.s)
    b0 = np.interp(seconds, node_seconds, sun.B0(nodes).to_value(u.deg))
    l0 = np.interp(seconds, node_seconds, np.unwrap(sun.L0(nodes).to_value(u.deg), period=360)) % 360
    dsun = np.interp(seconds, node_seconds, sun.earth_distance(nodes).to_value(u.m))
    rsun = np.degrees(np.arcsin(RSUN_REF / dsun)) * 3600
    return [header_string(template, {
        "T_OBS": f"'{t}Z'", "DATE-OBS": f"'{d}'", "EXPTIME": f"{e:.6f}",
        "CRPIX1": f"{x:.4f}", "CRPIX2": f"{y:.4f}", "DSUN_OBS": f"{ds:.1f}", "RSUN_OBS": f"{r:.6f}",
        "HGLT_OBS": f"{b:.6f}", "CRLT_OBS": f"{b:.6f}", "CRLN_OBS": f"{lon:.6f}",
    }) for t, d, e, (x, y), ds, r, b, lon in zip(t_obs, date_obs, exposure, crpix, dsun, rsun, b0, l0,
                                                  strict=True)]


def _write(folder, wavelength, times, headers, data):
    folder.mkdir(parents=True, exist_ok=True)
    stamps = np.char.replace(np.char.replace(Time(times, precision=2).isot, ":", ""), ".", "_")
    paths = [folder / f"aia_synth_{wavelength}_{stamp}.fits" for stamp in stamps]
    for path, header, frame in zip(paths, headers, data, strict=True):
        write_fits(path, header, frame)
    return paths


def _reference_map(wavelength, shape, crpix):
    """An empty map of the field with the nominal pointing, at START."""
    template = template_cards(_constant_header(wavelength), shape)
    header = _frame_headers(template, START.reshape(1), [_CHANNELS[wavelength].exposure], crpix[None])[0]
    return sunpy.map.Map(np.zeros(shape), fits.Header.fromstring(header))


def _bounding_box(reference, mask):
    """Helioprojective corners of the box through the centres of the outermost pixels of ``mask``."""
    rows, cols = np.nonzero(mask)
    x, y = np.meshgrid([cols.min(), cols.max()], [rows.min(), rows.max()])
    corners = reference.pixel_to_world(x * u.pix, y * u.pix)
    return (SkyCoord(corners.Tx.min(), corners.Ty.min(), frame=reference.coordinate_frame),
            SkyCoord(corners.Tx.max(), corners.Ty.max(), frame=reference.coordinate_frame))

"""
The emission model of the synthetic observation: an arcade of cooling coronal loops.
"""
from dataclasses import dataclass

import numpy as np

__all__ = ["LoopArcade"]

#: Mean time between two heating pulses of one loop, in seconds.
PULSE_SPACING = 450.0
#: Extra time covered by the pulse trains before and after the observation, in seconds.
PULSE_MARGIN = 1800.0


@dataclass(frozen=True)
class ArcadeGeometry:
    r"""
    Where the loops of a `LoopArcade` lie, at any (continuous) pixel position ``(x, y)``.

    The loops are half-ellipses about ``origin`` (the middle of their common baseline), tilted by
    ``tilt`` radians: with :math:`a` the distance along the baseline and :math:`b` the height above
    it divided by ``aspect``, a point is at :math:`\rho = \sqrt{a^2 + b^2}` from the origin and at
    the angle :math:`\theta = \operatorname{atan2}(b, a)` along the loops (0 to :math:`\pi`). It
    belongs to the loop :math:`k` of the nearest radius if :math:`b \ge 0` and
    :math:`|\rho - r_k| \le 2.5\,w`, and has there the weight
    :math:`B_k \exp[-(\rho - r_k)^2 / 2w^2]` and the cooling time
    :math:`T_k (0.75 + 0.25 \sin\theta)`. The diffuse halo around the arcade is
    :math:`\exp[-\rho^2 / 2 h^2]`. Points outside ``bounds`` belong to no loop.

    Attributes
    ----------
    origin : tuple of float
        ``(x, y)`` of the middle of the baseline.
    tilt, aspect : float
    radii : numpy.ndarray
        :math:`r_k`, pixels.
    width : float
        :math:`w`, pixels.
    brightness, top_cooling_time : numpy.ndarray
        :math:`B_k` and :math:`T_k` (s).
    halo_width : float
        :math:`h`, pixels.
    bounds : tuple of int
        ``(ny, nx)``: loops only within ``-0.5 <= x < nx - 0.5``, ``-0.5 <= y < ny - 0.5``.
    """

    origin: tuple
    tilt: float
    aspect: float
    radii: np.ndarray
    width: float
    brightness: np.ndarray
    top_cooling_time: np.ndarray
    halo_width: float
    bounds: tuple

    def __call__(self, x, y):
        """
        The loop index, weight and cooling time (s) at the points ``(x, y)``.

        Parameters
        ----------
        x, y : numpy.ndarray
            Pixel coordinates, of any (common) shape.

        Returns
        -------
        loop, weight, cooling_time : numpy.ndarray
            Of the shape of ``x``: -1, 0 and NaN outside the loops.
        """
        along, up = self._ellipse(x, y)
        rho, angle = np.hypot(along, up), np.arctan2(up, along)   # angle: 0 -> pi along a loop
        loop = np.abs(rho[..., None] - self.radii).argmin(axis=-1)
        offset = rho - self.radii[loop]
        ny, nx = self.bounds
        inside = (up >= 0) & (np.abs(offset) <= 2.5 * self.width) & (x >= -0.5) & (x < nx - 0.5) & (y >= -0.5) & (
            y < ny - 0.5)
        loop = np.where(inside, loop, -1)
        weight = np.where(inside, self.brightness[loop] * np.exp(-0.5 * (offset / self.width) ** 2), 0.0)
        cooling_time = np.where(inside, self.top_cooling_time[loop] * (0.75 + 0.25 * np.sin(angle)), np.nan)
        return loop, weight, cooling_time

    def halo(self, x, y):
        """The diffuse halo at the points ``(x, y)`` (1 at ``origin``)."""
        along, up = self._ellipse(x, y)
        return np.exp(-0.5 * (along**2 + up**2) / self.halo_width**2)

    def _ellipse(self, x, y):
        """Coordinates along the baseline and up from it, the latter divided by ``aspect``."""
        x, y = x - self.origin[0], y - self.origin[1]
        cos, sin = np.cos(self.tilt), np.sin(self.tilt)
        return x * cos + y * sin, (y * cos - x * sin) / self.aspect


@dataclass(frozen=True)
class LoopArcade:
    r"""
    Nested half-elliptical loops, each with its own train of heating/cooling pulses.

    Every loop pixel :math:`(x, y)` belongs to one loop :math:`k(x, y)`. Seen in a channel whose
    *cooling fraction* is :math:`\phi` (0 for the hottest channel, 1 for the coolest), its
    dimensionless light curve is

    .. math::

        s_\phi(x, y, t) = w(x, y)\, f_{k}\bigl(t - \phi\,\tau(x, y)\bigr), \qquad
        f_k(t) = \sum_i A_{ki} \exp\left[-\frac{(t - t_{ki})^2}{2 \sigma_{ki}^2(t)}\right],

    with :math:`\sigma_{ki}(t)` the rise width of pulse :math:`i` before its peak :math:`t_{ki}` and
    its (longer) decay width after it, :math:`w` the brightness profile across the loops and
    :math:`\tau` the time the plasma takes to cool from the hottest to the coolest channel. Two
    channels of a pixel are therefore exact time-shifted copies of each other, and the lag that
    maximises their cross-correlation over an unlimited time range is
    :math:`(\phi_B - \phi_A)\,\tau(x, y)`. Outside the loops ``loop`` is -1, ``weight`` is 0 and
    ``cooling_time`` is NaN.

    Attributes
    ----------
    loop : numpy.ndarray
        ``(ny, nx)`` index of the loop of each pixel, -1 outside the loops.
    weight : numpy.ndarray
        ``(ny, nx)`` brightness profile :math:`w` (Gaussian across each loop).
    cooling_time : numpy.ndarray
        ``(ny, nx)`` :math:`\tau` in seconds, longest at the loop tops.
    background : numpy.ndarray
        ``(ny, nx)`` smooth, dimensionless pattern of the diffuse emission around the arcade.
    peak_time, amplitude, rise, decay : numpy.ndarray
        ``(n_loops, n_pulses)`` :math:`t_{ki}` (s, from the start of the observation),
        :math:`A_{ki}`, and the rise and decay widths (s) of the pulses.
    geometry : ArcadeGeometry
        The loops at any position: ``loop``, ``weight`` and ``cooling_time`` are its values on the
        pixel grid.
    """

    loop: np.ndarray
    weight: np.ndarray
    cooling_time: np.ndarray
    background: np.ndarray
    peak_time: np.ndarray
    amplitude: np.ndarray
    rise: np.ndarray
    decay: np.ndarray
    geometry: ArcadeGeometry

    @classmethod
    def random(cls, shape, duration, rng, *, tilt=0.35, aspect=0.8):
        """
        Draw an arcade filling most of a field of ``shape`` pixels.

        The loops are half-ellipses (height ``aspect`` times the half-width) with their footpoints on
        a common baseline at 30% of the field height, tilted by ``tilt`` radians (about 20 degrees). Their
        number grows with the field (2 to 8), and per loop the brightness (0.6-1.4), the cooling time
        at the loop top (20-40 min; 75% of it at the footpoints) and the pulses are random: about one
        every `PULSE_SPACING` seconds, at uniformly random times from `PULSE_MARGIN` before the
        coolest channel can see them to `PULSE_MARGIN` after ``duration``, with rise widths of
        30-75 s and decay widths 1.5-2.5 times longer (full widths at half maximum of 1.5-5 min).
        Narrow, frequent pulses keep the finite-window bias of the cross-correlation peak small:
        on noise-free light curves it stays within a few seconds of the true lag.

        Parameters
        ----------
        shape : tuple of int
            ``(ny, nx)``.
        duration : float
            Time span, in seconds, that the light curves must cover.
        rng : numpy.random.Generator
        """
        ny, nx = shape
        size = min(shape)
        n_loops = int(np.clip(size // 10, 2, 8))
        radii = size * np.linspace(0.2, 0.42, n_loops)
        geometry = ArcadeGeometry(
            origin=((nx - 1) / 2, 0.3 * (ny - 1)), tilt=tilt, aspect=aspect, radii=radii,
            width=0.35 * (radii[1] - radii[0]), brightness=rng.uniform(0.6, 1.4, n_loops),
            top_cooling_time=rng.uniform(1200, 2400, n_loops), halo_width=0.35 * size, bounds=(ny, nx),
        )
        y, x = np.indices(shape, dtype=float)
        loop, weight, cooling_time = geometry(x, y)

        start = -geometry.top_cooling_time.max() - PULSE_MARGIN
        stop = duration + PULSE_MARGIN
        pulses = (n_loops, max(1, round((stop - start) / PULSE_SPACING)))
        rise = rng.uniform(30, 75, pulses)
        return cls(loop=loop, weight=weight, cooling_time=cooling_time, background=0.6 + geometry.halo(x, y),
                   peak_time=np.sort(rng.uniform(start, stop, pulses), axis=1),
                   amplitude=rng.uniform(0.5, 1.5, pulses), rise=rise,
                   decay=rise * rng.uniform(1.5, 2.5, pulses), geometry=geometry)

    @property
    def mask(self):
        """``(ny, nx)`` boolean: the loop pixels."""
        return self.loop >= 0

    def light_curves(self, time, fraction):
        r"""
        Evaluate :math:`s_\phi(x, y, t)` on the pixel grid.

        Parameters
        ----------
        time : numpy.ndarray
            ``(n_time,)`` times in seconds from the start of the observation.
        fraction : float
            Cooling fraction :math:`\phi` of the channel.

        Returns
        -------
        numpy.ndarray
            ``(n_time, ny, nx)``, zero outside the loops.
        """
        time = np.asarray(time, dtype=float)
        out = np.zeros((time.size, *self.loop.shape))
        for k in range(self.peak_time.shape[0]):
            pixels = self.loop == k
            since_heating = time[:, None] - fraction * self.cooling_time[pixels]
            out[:, pixels] = self._pulses(k, since_heating) * self.weight[pixels]
        return out

    def light_curves_at(self, time, fraction, x, y):
        r"""
        Evaluate :math:`s_\phi(x, y, t)` at moving points: ``(x[i], y[i])`` at ``time[i]``.

        Parameters
        ----------
        time : numpy.ndarray
            Times in seconds from the start of the observation.
        fraction : float
            Cooling fraction :math:`\phi` of the channel.
        x, y : numpy.ndarray
            Pixel coordinates (continuous); ``time``, ``x`` and ``y`` broadcast to a common shape.

        Returns
        -------
        numpy.ndarray
            Of the common shape, zero outside the loops.
        """
        time, x, y = np.broadcast_arrays(np.asarray(time, dtype=float), x, y)
        loop, weight, cooling_time = self.geometry(x, y)
        out = np.zeros(loop.shape)
        for k in np.unique(loop[loop >= 0]):
            points = loop == k
            since_heating = time[points] - fraction * cooling_time[points]
            out[points] = self._pulses(k, since_heating) * weight[points]
        return out

    def _pulses(self, k, since_heating):
        r""":math:`f_k` at the times ``since_heating`` (s), any shape."""
        first, last = since_heating.min(), since_heating.max()
        curve = np.zeros_like(since_heating)
        for peak, amplitude, rise, decay in zip(self.peak_time[k], self.amplitude[k], self.rise[k], self.decay[k],
                                                strict=True):
            if first - 8 * decay < peak < last + 8 * rise:  # skip pulses that stay below 1e-14
                dt = since_heating - peak
                curve += amplitude * np.exp(-0.5 * (dt / np.where(dt < 0, rise, decay)) ** 2)
        return curve

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
    """

    loop: np.ndarray
    weight: np.ndarray
    cooling_time: np.ndarray
    background: np.ndarray
    peak_time: np.ndarray
    amplitude: np.ndarray
    rise: np.ndarray
    decay: np.ndarray

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
        width = 0.35 * (radii[1] - radii[0])

        y, x = np.indices(shape, dtype=float)
        x, y = x - (nx - 1) / 2, y - 0.3 * (ny - 1)
        along = x * np.cos(tilt) + y * np.sin(tilt)
        up = (y * np.cos(tilt) - x * np.sin(tilt)) / aspect
        rho, angle = np.hypot(along, up), np.arctan2(up, along)   # angle: 0 -> pi along a loop

        loop = np.abs(rho[..., None] - radii).argmin(axis=-1)
        offset = rho - radii[loop]
        inside = (up >= 0) & (np.abs(offset) <= 2.5 * width)
        loop = np.where(inside, loop, -1)

        brightness = rng.uniform(0.6, 1.4, n_loops)
        weight = np.where(inside, brightness[loop] * np.exp(-0.5 * (offset / width) ** 2), 0.0)
        top_cooling_time = rng.uniform(1200, 2400, n_loops)
        cooling_time = np.where(inside, top_cooling_time[loop] * (0.75 + 0.25 * np.sin(angle)), np.nan)
        background = 0.6 + np.exp(-0.5 * (rho / (0.35 * size)) ** 2)

        start = -top_cooling_time.max() - PULSE_MARGIN
        stop = duration + PULSE_MARGIN
        pulses = (n_loops, max(1, round((stop - start) / PULSE_SPACING)))
        rise = rng.uniform(30, 75, pulses)
        return cls(loop=loop, weight=weight, cooling_time=cooling_time, background=background,
                   peak_time=np.sort(rng.uniform(start, stop, pulses), axis=1),
                   amplitude=rng.uniform(0.5, 1.5, pulses), rise=rise,
                   decay=rise * rng.uniform(1.5, 2.5, pulses))

    @property
    def mask(self):
        """``(ny, nx)`` boolean: the loop pixels."""
        return self.loop >= 0

    def light_curves(self, time, fraction):
        r"""
        Evaluate :math:`s_\phi(x, y, t)`.

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
        for k, pulses in enumerate(zip(self.peak_time, self.amplitude, self.rise, self.decay, strict=True)):
            pixels = self.loop == k
            since_heating = time[:, None] - fraction * self.cooling_time[pixels]
            first, last = since_heating.min(), since_heating.max()
            curve = np.zeros_like(since_heating)
            for peak, amplitude, rise, decay in zip(*pulses, strict=True):
                if first - 8 * decay < peak < last + 8 * rise:  # skip pulses that stay below 1e-14
                    dt = since_heating - peak
                    curve += amplitude * np.exp(-0.5 * (dt / np.where(dt < 0, rise, decay)) ** 2)
            out[:, pixels] = curve * self.weight[pixels]
        return out

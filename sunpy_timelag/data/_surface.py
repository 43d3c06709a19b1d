r"""
The Sun around the active region of a full-disk synthetic observation: a limb-brightened disk with a
faint corona, and where a patch of the solar surface seen at one time lies at other times.

Positions on the sky are *tangent-plane coordinates* :math:`(u, v)`, in arcsec: the intermediate
world coordinates of a helioprojective TAN projection centred on the Sun, solar north up. A frame's
pixel :math:`p` (0-based) maps to them by its header's affine transform,

.. math::

    (u, v) = \Delta\, R(\gamma)\, (p + 1 - c),

with :math:`\Delta` the plate scale (``CDELT``), :math:`\gamma` the roll (``CROTA2``) and :math:`c`
the reference pixel (``CRPIX``, with ``CRVAL`` = 0 at the Sun's centre), so that only the observer
and the time distinguish one frame's sky from another's.
"""
import astropy.units as u
import numpy as np
import scipy.ndimage
from astropy.coordinates import Angle, SkyCoord
from astropy.wcs import WCS
from sunpy.coordinates import Helioprojective, get_earth, propagate_with_solar_surface

__all__ = ["disk_profile", "plane_coordinates", "SurfaceTracker"]


def disk_profile(rho, *, scale_height=0.1, limb_width=0.005):
    r"""
    Brightness of an optically thin, hydrostatic corona above the disk, relative to the disk centre.

    A layer of scale height :math:`h` (solar radii) seen at the projected radius :math:`\rho` (solar
    radii) has, on the disk, a line of sight through it :math:`1/\mu` times the vertical one
    (:math:`\mu = \sqrt{1 - \rho^2}`) up to the grazing length :math:`\sqrt{\pi / 2h}` at the limb:

    .. math::

        I_\mathrm{disk} = \bigl(\mu^2 + \pi^{-1} 2h\bigr)^{-1/2}, \qquad
        I_\mathrm{corona} = \sqrt{2\pi\rho / h}\; e^{-(\rho - 1)/h},

    the corona off the limb seen through both halves of the layer (twice the disk's limb value).
    The two join across the limb over ``limb_width`` (a logistic step), and the profile is divided
    by its value at the disk centre.

    Parameters
    ----------
    rho : numpy.ndarray
        Projected distance from the Sun's centre, in solar radii.
    scale_height : float
        :math:`h`, solar radii.
    limb_width : float
        Width of the step at the limb, solar radii (about a pixel).

    Returns
    -------
    numpy.ndarray
    """
    rho = np.asarray(rho, dtype=float)
    grazing = 2 * scale_height / np.pi
    disk = 1 / np.sqrt(np.clip(1 - rho**2, 0, None) + grazing)
    corona = np.sqrt(2 * np.pi * np.maximum(rho, 1) / scale_height) * np.exp(-(rho - 1) / scale_height)
    step = 0.5 * (1 + np.tanh((rho - 1) / limb_width))
    return ((1 - step) * disk + step * corona) * np.sqrt(1 + grazing)


def plane_coordinates(x, y, *, crpix, cdelt, crota2):
    """
    Tangent-plane coordinates (arcsec) of 0-based pixels ``(x, y)`` of a frame, from its header.

    Parameters
    ----------
    x, y : numpy.ndarray
        Pixel coordinates; broadcast against the leading axes of the header values.
    crpix : numpy.ndarray
        ``(..., 2)``: ``CRPIX1``, ``CRPIX2``.
    cdelt : float
        ``CDELT1 = CDELT2``, arcsec.
    crota2 : numpy.ndarray
        ``(...)``: ``CROTA2``, degrees.

    Returns
    -------
    u, v : numpy.ndarray
    """
    crpix = np.asarray(crpix, dtype=float)
    angle = np.deg2rad(np.asarray(crota2, dtype=float))[..., None]
    dx, dy = x + 1 - crpix[..., 0:1], y + 1 - crpix[..., 1:2]
    cos, sin = np.cos(angle), np.sin(angle)
    return cdelt * (cos * dx - sin * dy), cdelt * (sin * dx + cos * dy)


def _plane_wcs():
    """The TAN projection of the tangent plane: 0-based pixel (u, v) is at (u, v) arcsec."""
    return WCS({"CTYPE1": "HPLN-TAN", "CTYPE2": "HPLT-TAN", "CUNIT1": "arcsec", "CUNIT2": "arcsec",
                "CDELT1": 1.0, "CDELT2": 1.0, "CRPIX1": 1.0, "CRPIX2": 1.0, "CRVAL1": 0.0, "CRVAL2": 0.0})


class SurfaceTracker:
    r"""
    Where the surface point seen at tangent-plane position :math:`(u, v)` at time :math:`t` was at
    the reference time, in pixels of a reference map.

    The point is put on the solar surface (sunpy's default for 2-D helioprojective coordinates),
    rotated back to the reference time by sunpy's differential-rotation model
    (`~sunpy.coordinates.propagate_with_solar_surface`), and located in the reference map, whose
    frame holds the observer at the reference time. sunpy computes this on a regular grid of
    :math:`(u, v)` (spacing ``spacing``) at evenly spaced node times no further apart than
    ``node_interval``; the tracker interpolates it bilinearly in space and quadratically in time
    (on the three nearest nodes). The map is smooth (the rotation moves the surface by about 10
    arcsec per hour, varying slowly across the field): with a spacing of two pixels and hourly nodes
    the interpolation errors stay below :math:`10^{-3}` pixel over hours.

    Parameters
    ----------
    reference_map : `~sunpy.map.GenericMap`
        Its WCS and observer define the reference pixels and time, its ``rsun`` the sphere on
        which the points lie. The frames' observer is the Earth, as in the synthetic frames' headers.
    start, stop : astropy.time.Time
        The times to cover.
    u_range, v_range : tuple of float
        The tangent-plane box to cover, arcsec.
    spacing : float
        Grid spacing, arcsec.
    node_interval : astropy.units.Quantity
        Longest interval between node times.
    rotation_model : str
        A model of `~sunpy.physics.differential_rotation.diff_rot` (``"howard"``, ...).

    Raises
    ------
    ValueError
        If part of the box is off the disk at some node time.
    """

    def __init__(self, reference_map, start, stop, u_range, v_range, *, spacing, node_interval=1 * u.h,
                 rotation_model="howard"):
        span = (stop - start).to_value(u.s)
        n_nodes = max(3, int(np.ceil(span / node_interval.to_value(u.s))) + 1)
        self.start = start
        self.node_seconds = np.linspace(0, span, n_nodes)
        self.u = np.arange(u_range[0], u_range[1] + spacing, spacing)
        self.v = np.arange(v_range[0], v_range[1] + spacing, spacing)
        grid_u, grid_v = np.meshgrid(self.u, self.v)
        plane = _plane_wcs()
        rsun = reference_map.coordinate_frame.rsun  # the sphere the points lie on: RSUN_REF of the frames
        fields = []
        for seconds in self.node_seconds:
            time = start + seconds * u.s
            frame = Helioprojective(observer=get_earth(time), obstime=time, rsun=rsun)
            lon, lat = plane.pixel_to_world_values(grid_u, grid_v)
            seen = SkyCoord(Angle(lon, u.deg).wrap_at(180 * u.deg), lat * u.deg, frame=frame)
            with propagate_with_solar_surface(rotation_model):
                then = seen.transform_to(reference_map.coordinate_frame)
            fields.append(reference_map.wcs.world_to_pixel(then))
        self.fields = np.array(fields)  # (node, x/y, v, u)
        if not np.isfinite(self.fields).all():
            raise ValueError("the tracked region reaches off the solar disk")

    def __call__(self, u_coord, v_coord, seconds):
        """
        Reference-map pixels ``(x, y)`` of points seen at ``(u, v)`` at ``seconds``.

        Parameters
        ----------
        u_coord, v_coord : numpy.ndarray
            ``(n_time, n_points)`` tangent-plane coordinates, arcsec.
        seconds : numpy.ndarray
            ``(n_time,)`` seconds after ``start``.

        Returns
        -------
        x, y : numpy.ndarray
            ``(n_time, n_points)``.
        """
        seconds = np.asarray(seconds, dtype=float)
        # Quadratic (Lagrange) interpolation on the three nodes around each time.
        step = self.node_seconds[1]
        middle = np.clip(np.rint(seconds / step).astype(int), 1, self.node_seconds.size - 2)
        s = seconds / step - middle
        weights = (0.5 * s * (s - 1), 1 - s**2, 0.5 * s * (s + 1))
        fields = sum(w[:, None, None, None] * self.fields[middle + k] for w, k in zip(weights, (-1, 0, 1), strict=True))
        rows = np.broadcast_to(np.arange(seconds.size)[:, None], u_coord.shape)
        index_v = (v_coord - self.v[0]) / (self.v[1] - self.v[0])
        index_u = (u_coord - self.u[0]) / (self.u[1] - self.u[0])
        return tuple(scipy.ndimage.map_coordinates(fields[:, axis], [rows, index_v, index_u], order=1, mode="nearest")
                     for axis in (0, 1))


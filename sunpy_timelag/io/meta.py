"""
Per-frame metadata of a cube that follows it through slicing and rebinning.
"""
import astropy.units as u
import numpy as np

from .wcs import resample_celestial_wcs

__all__ = ["FrameMeta"]

#: The array axes of a full cube, in order.
CUBE_AXES = ("time", "y", "x")


class FrameMeta(dict):
    """
    Cube metadata: global entries plus the per-frame ``headers`` and ``exposure_time``.

    It follows ndcube's axis-aware metadata protocol (``__ndcube_can_slice__`` and
    ``__ndcube_can_rebin__``), so slicing, cropping and rebinning a cube keep one header
    and one exposure time per frame, and the 2-D ``celestial_wcs`` of the pixels the cube
    holds (bin centres and scaled ``CDELT`` after rebinning). ``axes`` names the cube's
    array axes that remain (``"time"``, ``"y"``, ``"x"``): a cube of one frame (its time
    axis sliced away by an integer) has a scalar ``exposure_time`` and one header. Values
    are treated as immutable, so copies are shallow: copying a cube over thousands of
    frames does not copy thousands of headers.

    Parameters
    ----------
    *args, **kwargs
        As for `dict`. ``headers`` (a tuple of dict-like headers) and ``exposure_time``
        (a `~astropy.units.Quantity` array) hold one entry per frame; ``celestial_wcs``
        is the 2-D `astropy.wcs.WCS` of the cube's pixels; ``axes`` defaults to
        `CUBE_AXES`.
    """

    __ndcube_can_slice__ = True
    __ndcube_can_rebin__ = True

    def __deepcopy__(self, memo):
        return type(self)(self)

    @property
    def axes(self):
        """tuple of str: the cube's remaining array axes, among ``("time", "y", "x")``."""
        return self.get("axes", CUBE_AXES)

    @property
    def slice(self):
        """Index with the cube's (per-axis) slicing item: ``meta.slice[item]``."""
        return _FrameMetaSlicer(self)

    def rebin(self, bin_shape, operation=np.mean):
        """
        Metadata of the cube rebinned by ``bin_shape`` (one factor per remaining array axis).

        A bin of frames keeps the header of its first frame; its exposure time is
        ``operation`` (the operation combining the data) of the frames' exposure times,
        so that dividing the rebinned data by it gives the rate. The celestial WCS
        describes the bins: their centres, and ``CDELT`` times the factors.
        """
        factors = dict(zip(self.axes, (int(f) for f in bin_shape), strict=True))
        new = type(self)(self, celestial_wcs=resample_celestial_wcs(
            self["celestial_wcs"], slice(None, None, factors.get("y", 1)), slice(None, None, factors.get("x", 1))))
        factor = factors.get("time", 1)
        if factor > 1:
            n_bins = len(self["headers"]) // factor
            exposure = self["exposure_time"][: n_bins * factor].reshape(n_bins, factor)
            new["headers"] = self["headers"][: n_bins * factor : factor]
            new["exposure_time"] = u.Quantity(operation(exposure.value, axis=1), exposure.unit)
        return new


class _FrameMetaSlicer:
    def __init__(self, meta):
        self.meta = meta

    def __getitem__(self, item):
        meta, axes = self.meta, self.meta.axes
        item = item if isinstance(item, tuple) else (item,)
        items = dict(zip(axes, item + (slice(None),) * (len(axes) - len(item)), strict=True))
        dropped = {axis for axis, index in items.items() if isinstance(index, int | np.integer)}
        new = type(meta)(meta, axes=tuple(axis for axis in axes if axis not in dropped))
        if "time" in items:
            kept = np.arange(len(meta["headers"]))[items["time"]]
            new["headers"] = tuple(meta["headers"][i] for i in np.atleast_1d(kept))
            new["exposure_time"] = meta["exposure_time"][items["time"]]
        spatial = [_as_slice(items.get(axis, slice(None))) for axis in ("y", "x")]
        new["celestial_wcs"] = resample_celestial_wcs(meta["celestial_wcs"], *spatial)
        return new


def _as_slice(index):
    """An integer index as the slice of length one that keeps the axis (the WCS stays 2-D)."""
    return slice(index, index + 1) if isinstance(index, int | np.integer) else index

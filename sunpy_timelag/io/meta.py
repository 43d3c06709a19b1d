"""
Per-frame metadata of a cube that follows it through slicing and rebinning.
"""
import astropy.units as u
import numpy as np

__all__ = ["FrameMeta"]


class FrameMeta(dict):
    """
    Cube metadata: global entries plus the per-frame ``headers`` and ``exposure_time``.

    It follows ndcube's axis-aware metadata protocol (``__ndcube_can_slice__`` and
    ``__ndcube_can_rebin__``), so slicing, cropping and rebinning a cube keep one
    header and one exposure time per frame. Values are treated as immutable, so copies
    are shallow: copying a cube over thousands of frames does not copy thousands of
    headers.

    Parameters
    ----------
    *args, **kwargs
        As for `dict`. ``headers`` (a tuple of dict-like headers) and ``exposure_time``
        (a `~astropy.units.Quantity` array) hold one entry per frame.
    """

    __ndcube_can_slice__ = True
    __ndcube_can_rebin__ = True

    def __deepcopy__(self, memo):
        return type(self)(self)

    @property
    def slice(self):
        """Index with the cube's (per-axis) slicing item: ``meta.slice[item]``."""
        return _FrameMetaSlicer(self)

    def rebin(self, bin_shape, operation=np.mean):
        """
        Metadata of the cube rebinned by ``bin_shape``.

        A bin of frames keeps the header of its first frame; its exposure time is
        ``operation`` (the operation combining the data) of the frames' exposure times,
        so that dividing the rebinned data by it gives the rate.
        """
        factor = int(bin_shape[0])
        if factor == 1:
            return type(self)(self)
        n_bins = len(self["headers"]) // factor
        exposure = self["exposure_time"][: n_bins * factor].reshape(n_bins, factor)
        return type(self)(
            self,
            headers=self["headers"][: n_bins * factor : factor],
            exposure_time=u.Quantity(operation(exposure.value, axis=1), exposure.unit),
        )


class _FrameMetaSlicer:
    def __init__(self, meta):
        self.meta = meta

    def __getitem__(self, item):
        time_item = item[0] if isinstance(item, tuple) else item
        if isinstance(time_item, int | np.integer):
            time_item = slice(time_item, time_item + 1 or None)
        headers = self.meta["headers"]
        kept = np.arange(len(headers))[time_item]
        return type(self.meta)(
            self.meta,
            headers=tuple(headers[i] for i in kept),
            exposure_time=self.meta["exposure_time"][kept],
        )

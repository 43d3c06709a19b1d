"""
Synthetic AIA observations with a known ground truth, for the demo, the tests and the docs.

`make_synthetic_observation` writes small, pre-aligned cut-outs around an active region;
`make_full_disk_observation` writes what the AIA archive serves: full-disk level-1 frames, Rice
tile-compressed, rolled and off-centre, with the active region rotating with the Sun and a few
frames flagged in ``QUALITY``.
"""
from .full_disk import QUALITY_FAULTS, FullDiskObservation, make_full_disk_observation
from .synthetic import STANDARD_CHANNELS, SyntheticObservation, make_synthetic_observation

__all__ = ["STANDARD_CHANNELS", "SyntheticObservation", "make_synthetic_observation",
           "FullDiskObservation", "make_full_disk_observation", "QUALITY_FAULTS"]

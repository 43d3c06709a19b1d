"""
sunpy_timelag: lazy, coordinate-aware time-lag analysis of coronal imaging.
"""
from ._version import __version__
from .analysis import timelag_maps
from .cube import TimelagCube

__all__ = ["TimelagCube", "timelag_maps", "__version__"]

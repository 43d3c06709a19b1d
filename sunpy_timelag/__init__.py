"""
sunpy_timelag: lazy, coordinate-aware time-lag analysis of coronal imaging.
"""
from ._version import __version__
from .cube import TimelagCube

__all__ = ["TimelagCube", "__version__"]

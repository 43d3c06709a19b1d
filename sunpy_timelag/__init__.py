"""
sunpy_timelag: lazy, coordinate-aware time-lag analysis of coronal imaging.
"""
from ._version import __version__

__all__ = ["__version__"]

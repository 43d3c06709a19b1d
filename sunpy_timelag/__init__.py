"""
sunpy_timelag: lazy, coordinate-aware time-lag analysis of coronal imaging.

The array kernels (`sunpy_timelag.lags`, `sunpy_timelag.aia`, `sunpy_timelag.backend`)
need only NumPy, SciPy and, for the GPU, CuPy; the cube and map layers import sunpy
and ndcube when first used, so the kernels can run where sunpy is not installed.
"""
from ._version import __version__

__all__ = ["TimelagCube", "timelag_maps", "windowed_timelag_maps", "__version__"]


def __getattr__(name):
    if name == "TimelagCube":
        from .cube import TimelagCube

        return TimelagCube
    if name == "timelag_maps":
        from .analysis import timelag_maps

        return timelag_maps
    if name == "windowed_timelag_maps":
        from .windowed import windowed_timelag_maps

        return windowed_timelag_maps
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

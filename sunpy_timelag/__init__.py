"""
sunpy_timelag: lazy, coordinate-aware time-lag analysis of coronal imaging.

The array kernels (`sunpy_timelag.lags`, `sunpy_timelag.rotation`, `sunpy_timelag.aia`)
need only NumPy, SciPy and, for the GPU, CuPy; the cube and map layers import sunpy
and ndcube when first used, so the kernels can run where sunpy is not installed.
"""
from ._version import __version__  # noqa: F401  (sunpy_timelag.__version__, without an API page)

__all__ = ["TimelagCube", "timelag_maps", "windowed_timelag_maps", "time_grid", "PairMaps", "WindowedMaps",
           "TimelagResults", "ResultMap", "load_map", "HOT_TO_COOL", "cupy_available"]

# Public name -> the module that defines it, imported on first access.
_LAZY = {
    "TimelagCube": "cube",
    "timelag_maps": "analysis",
    "time_grid": "analysis",
    "PairMaps": "analysis",
    "HOT_TO_COOL": "analysis",
    "windowed_timelag_maps": "windowed",
    "WindowedMaps": "windowed",
    "TimelagResults": "results",
    "ResultMap": "maps",
    "load_map": "maps",
    "cupy_available": "backend",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

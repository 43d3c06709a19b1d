"""
Instrument preparation of a `~sunpy_timelag.TimelagCube`, frame by frame and lazily.
"""

__all__ = ["PrepMixin"]


class PrepMixin:
    """Preparation steps of `~sunpy_timelag.TimelagCube` (PSF deconvolution, registration, persistence)."""

"""
What differs between the aiapy releases this package supports (0.9 to 0.12).
"""

__all__ = ["aiapy_user_warning"]


def aiapy_user_warning():
    """
    aiapy's user warning class: ``aiapy.utils.AIApyUserWarning`` since aiapy 0.11,
    ``aiapy.util.AIApyUserWarning`` in 0.10, ``aiapy.util.AiapyUserWarning`` in 0.9.

    Imported when a warning is issued, not with the module: aiapy imports sunpy, which the array
    kernels otherwise do without.

    Returns
    -------
    type
        The warning class, a `UserWarning` subclass, so that filtering it silences ours as it
        silences aiapy's.
    """
    try:
        from aiapy.utils import AIApyUserWarning
    except ImportError:  # aiapy < 0.11
        import aiapy.util

        return getattr(aiapy.util, "AIApyUserWarning", None) or aiapy.util.AiapyUserWarning
    return AIApyUserWarning

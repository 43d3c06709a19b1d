"""
Synthetic AIA observations with a known ground truth, for the demo, the tests and the docs.
"""
from .synthetic import STANDARD_CHANNELS, SyntheticObservation, make_synthetic_observation

__all__ = ["STANDARD_CHANNELS", "SyntheticObservation", "make_synthetic_observation"]

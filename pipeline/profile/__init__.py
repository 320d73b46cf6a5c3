"""A snapshot's data profile (named apart from the log shapes in shapes/): counts, balance, pairability,
label noise (with its evidence), length bias and truncation. measure.py gathers them; lengths.py counts
tokens as training will; noise.py reads noise off the votes; reward_model.py estimates it when no
comparison was repeated."""

from alignloop.profile.lengths import Truncation, measure_truncation
from alignloop.profile.measure import DataProfile, measure_profile
from alignloop.profile.noise import NoiseEstimate

__all__ = ["DataProfile", "NoiseEstimate", "Truncation", "measure_profile", "measure_truncation"]

"""A snapshot's data shape: counts, balance, pairability, label noise (with its evidence), length bias
and truncation. measure.py gathers them; lengths.py counts tokens as training will; noise.py reads
noise off the votes; reward_model.py estimates it when no comparison was repeated."""

from pipeline.shape.lengths import Truncation, measure_truncation
from pipeline.shape.measure import DataShape, measure_shape
from pipeline.shape.noise import NoiseEstimate

__all__ = ["DataShape", "NoiseEstimate", "Truncation", "measure_shape", "measure_truncation"]

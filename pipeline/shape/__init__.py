"""A snapshot's data shape: counts, balance, pairability, label noise (with its evidence), length bias
and truncation. measure.py gathers them; noise.py reads noise off the votes; reward_model.py
estimates it when no comparison was repeated."""

from pipeline.shape.measure import DataShape, Truncation, measure_shape, measure_truncation, tokenizer_counter
from pipeline.shape.noise import NoiseEstimate

__all__ = ["DataShape", "NoiseEstimate", "Truncation", "measure_shape", "measure_truncation", "tokenizer_counter"]

"""torchmetrics ``Metric`` subclasses and their pure functional cores; they know nothing of Lightning modules.

FID, Parzen, AIS and the toy metrics keep float64 sums with ``dist_reduce_fx="sum"``; KID, the Inception Score and
precision/recall need the features themselves and gather them in rank order (uneven or empty shards
included). Under DDP every rank's samples count once, and the result equals the single-process one.
"""

from lightning_gan.metrics.ais import AISLogLikelihood, bdmc
from lightning_gan.metrics.annealing import ais_log_likelihood, reverse_ais_log_likelihood, sigmoid_schedule
from lightning_gan.metrics.cache import CachedRealSet, RealStatisticsCache
from lightning_gan.metrics.fid import (
    FrechetInceptionDistance,
    InceptionFeatureExtractor,
    InceptionWeightsNotFoundError,
)
from lightning_gan.metrics.features import FeatureExtractor, FeatureWeightsNotFoundError, extractor_names, metric_layer
from lightning_gan.metrics.inception_score import InceptionScore
from lightning_gan.metrics.kid import KernelInceptionDistance
from lightning_gan.metrics.parzen import ParzenLogLikelihood, default_sigmas, parzen_log_likelihood
from lightning_gan.metrics.precision_recall import PrecisionRecall
from lightning_gan.metrics.small import SmallFeatureExtractor
from lightning_gan.metrics.stacked_mnist import StackedMNISTModes, stacked_mnist_modes, train_digit_classifier
from lightning_gan.metrics.toy import LogProbOfSamples, ModeCoverage

__all__ = [
    "AISLogLikelihood",
    "ais_log_likelihood",
    "reverse_ais_log_likelihood",
    "bdmc",
    "sigmoid_schedule",
    "FrechetInceptionDistance",
    "InceptionFeatureExtractor",
    "InceptionWeightsNotFoundError",
    "RealStatisticsCache",
    "CachedRealSet",
    "ParzenLogLikelihood",
    "parzen_log_likelihood",
    "default_sigmas",
    "LogProbOfSamples",
    "ModeCoverage",
    "StackedMNISTModes",
    "stacked_mnist_modes",
    "train_digit_classifier",
    "KernelInceptionDistance",
    "InceptionScore",
    "PrecisionRecall",
    "FeatureExtractor",
    "FeatureWeightsNotFoundError",
    "SmallFeatureExtractor",
    "extractor_names",
    "metric_layer",
]

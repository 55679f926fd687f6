"""torchmetrics ``Metric`` subclasses and their pure functional cores; they know nothing of Lightning modules.

States are float64 sums with ``dist_reduce_fx="sum"``, so under DDP every rank's samples count once and no
rank waits on a list state.
"""

from lightning_gan.metrics.fid import (
    FrechetInceptionDistance,
    InceptionFeatureExtractor,
    InceptionWeightsNotFoundError,
    RealStatisticsCache,
)
from lightning_gan.metrics.parzen import ParzenLogLikelihood, default_sigmas, parzen_log_likelihood
from lightning_gan.metrics.toy import LogProbOfSamples

__all__ = [
    "FrechetInceptionDistance",
    "InceptionFeatureExtractor",
    "InceptionWeightsNotFoundError",
    "RealStatisticsCache",
    "ParzenLogLikelihood",
    "parzen_log_likelihood",
    "default_sigmas",
    "LogProbOfSamples",
]

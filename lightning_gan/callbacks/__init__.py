"""Callbacks that wire metrics and sample logging into training; they reach the model through ``generate``."""

from lightning_gan.callbacks.ais import AISLikelihoodCallback
from lightning_gan.callbacks.fid import FIDCallback
from lightning_gan.callbacks.generative_metrics import GenerativeMetricsCallback
from lightning_gan.callbacks.guard import DivergenceError, DivergenceGuard
from lightning_gan.callbacks.likelihood import ParzenLikelihoodCallback, ToyLikelihoodCallback
from lightning_gan.callbacks.samples import ImageSampler, LatentInterpolation, slerp

__all__ = [
    "AISLikelihoodCallback",
    "FIDCallback",
    "GenerativeMetricsCallback",
    "DivergenceGuard",
    "DivergenceError",
    "ParzenLikelihoodCallback",
    "ToyLikelihoodCallback",
    "ImageSampler",
    "LatentInterpolation",
    "slerp",
]

"""lightning_gan: PyTorch Lightning components for generative adversarial networks."""

from lightning_gan import callbacks, data, losses, metrics, nets
from lightning_gan.callbacks import (
    AISLikelihoodCallback,
    DivergenceGuard,
    FIDCallback,
    GenerativeMetricsCallback,
    ImageSampler,
    LatentInterpolation,
    ParzenLikelihoodCallback,
    ToyLikelihoodCallback,
)
from lightning_gan.ema import ExponentialMovingAverage
from lightning_gan.modules import ACGAN, DCGAN, GAN, SNGAN, WGANGP, ConditionalGAN, FeatureMatchingGAN, InfoGAN, VanillaGAN
from lightning_gan.strategies import GANDDPStrategy

__version__ = "0.1.0"

__all__ = [
    "GAN",
    "VanillaGAN",
    "DCGAN",
    "WGANGP",
    "SNGAN",
    "ConditionalGAN",
    "ACGAN",
    "InfoGAN",
    "FeatureMatchingGAN",
    "GANDDPStrategy",
    "FIDCallback",
    "GenerativeMetricsCallback",
    "DivergenceGuard",
    "ParzenLikelihoodCallback",
    "AISLikelihoodCallback",
    "ToyLikelihoodCallback",
    "ImageSampler",
    "LatentInterpolation",
    "ExponentialMovingAverage",
    "callbacks",
    "data",
    "losses",
    "metrics",
    "nets",
]

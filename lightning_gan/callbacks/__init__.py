"""Callbacks that wire metrics and sample logging into training; they reach the model through ``generate``."""

from lightning_gan.callbacks.samples import ImageSampler, LatentInterpolation, slerp

__all__ = ["ImageSampler", "LatentInterpolation", "slerp"]

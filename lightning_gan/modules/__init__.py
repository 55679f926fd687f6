"""LightningModules: the GAN base class and ready-made presets."""

from lightning_gan.modules.acgan import ACGAN
from lightning_gan.modules.conditional import ConditionalGAN
from lightning_gan.modules.feature_matching import FeatureMatchingGAN
from lightning_gan.modules.gan import GAN
from lightning_gan.modules.infogan import InfoGAN
from lightning_gan.modules.presets import DCGAN, SNGAN, WGANGP, VanillaGAN

__all__ = ["GAN", "VanillaGAN", "DCGAN", "WGANGP", "SNGAN", "ConditionalGAN", "ACGAN", "InfoGAN", "FeatureMatchingGAN"]

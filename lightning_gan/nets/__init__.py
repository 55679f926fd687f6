"""Generator and discriminator networks (plain ``torch.nn.Module`` objects)."""

from .dcgan import DCGANDiscriminator, DCGANGenerator, dcgan_init_
from .mlp import MLPDiscriminator, MLPGenerator

__all__ = [
    "MLPGenerator",
    "MLPDiscriminator",
    "DCGANGenerator",
    "DCGANDiscriminator",
    "dcgan_init_",
]

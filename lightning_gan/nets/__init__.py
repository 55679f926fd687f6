"""Generator and discriminator networks (plain ``torch.nn.Module`` objects).

Every net takes ``num_classes``: ``None`` builds the unconditional net, called as ``net(x)``; a number
builds its class-conditional variant, called as ``net(x, labels)``.
"""

from .conditioning import ConditionalBatchNorm2d, ProjectionHead
from .dcgan import DCGANDiscriminator, DCGANGenerator, dcgan_init_
from .mlp import MLPDiscriminator, MLPGenerator
from .resnet import ResNetDiscriminator, ResNetGenerator

__all__ = [
    "MLPGenerator",
    "MLPDiscriminator",
    "DCGANGenerator",
    "DCGANDiscriminator",
    "ResNetGenerator",
    "ResNetDiscriminator",
    "ConditionalBatchNorm2d",
    "ProjectionHead",
    "dcgan_init_",
]

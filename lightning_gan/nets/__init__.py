"""Generator and discriminator networks (plain ``torch.nn.Module`` objects).

Every net takes ``num_classes``: ``None`` builds the unconditional net, called as ``net(x)``; a number
builds its class-conditional variant, called as ``net(x, labels)``.

Two building blocks are switched on by options: a SAGAN self-attention block (:class:`SelfAttention2d`,
``attention_resolution`` of the DCGAN and ResNet nets) and a ProGAN minibatch standard deviation layer
(:class:`MinibatchStdDev`, ``minibatch_std_group`` of the discriminators).
"""

from .attention import SelfAttention2d
from .conditioning import ConditionalBatchNorm2d, ProjectionHead
from .dcgan import DCGANDiscriminator, DCGANGenerator, dcgan_init_
from .heads import AuxiliaryHeads
from .minibatch_std import MinibatchStdDev
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
    "SelfAttention2d",
    "MinibatchStdDev",
    "AuxiliaryHeads",
    "dcgan_init_",
]

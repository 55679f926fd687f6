"""Auxiliary heads on a discriminator's body: AC-GAN's classifier, InfoGAN's Q head, feature matching's features."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Callable, Optional

from torch import Tensor, nn
from torch.nn.utils import parametrize

from .mlp import _apply_spectral_norm, _check_positive_int

__all__ = ["AuxiliaryHeads"]

#: The head name that returns the body's features themselves (no layer), for feature matching.
FEATURES = "features"


def _body_and_final(discriminator: nn.Module) -> tuple[Callable[[Tensor], Tensor], nn.Module]:
    """The discriminator's feature extractor (input -> what its last layer reads) and its last layer."""
    net = getattr(discriminator, "net", None)
    if isinstance(net, nn.Sequential) and isinstance(net[-1], (nn.Linear, nn.Conv2d)):  # MLP and DCGAN nets
        body = net[:-1]
        return body, net[-1]
    blocks, linear = getattr(discriminator, "blocks", None), getattr(discriminator, "linear", None)
    if isinstance(blocks, nn.Module) and isinstance(linear, nn.Linear):  # the SNGAN ResNet: ReLU, global sum pooling
        return (lambda x: nn.functional.relu(blocks(x)).sum(dim=(2, 3))), linear
    raise TypeError(
        f"AuxiliaryHeads cannot find the body of a {type(discriminator).__name__}: it supports the package's "
        "MLPDiscriminator, DCGANDiscriminator and ResNetDiscriminator. For another net, return (logits, heads) "
        "from its forward yourself."
    )


def _head_like(final: nn.Module, out_features: int, hidden: int) -> nn.Module:
    # A head reads what the last layer reads, the way it reads it: a Linear on features, or a Conv2d over
    # the DCGAN discriminator's last map (its kernel covering the whole map), flattened.
    if isinstance(final, nn.Conv2d):
        first: nn.Module = nn.Sequential(
            nn.Conv2d(final.in_channels, hidden or out_features, final.kernel_size, final.stride, final.padding), nn.Flatten(1)
        )
    else:
        first = nn.Linear(final.in_features, hidden or out_features)
    if not hidden:
        return first
    return nn.Sequential(first, nn.LeakyReLU(0.2), nn.Linear(hidden, out_features))


class AuxiliaryHeads(nn.Module):
    """A discriminator that also returns heads computed from its body: ``d(x) -> (logits, {name: head(x)})``.

    The heads read what the discriminator's last layer reads (its last hidden layer, or its last feature
    map), so they share the whole body with the real/fake logit, as AC-GAN's auxiliary classifier (Odena
    et al. 2017) and InfoGAN's Q network (Chen et al. 2016) do. A head named ``"features"`` with size
    ``0`` returns those features themselves, for feature matching (Salimans et al. 2016). The GAN module
    passes the heads to :meth:`~lightning_gan.GAN.discriminator_auxiliary_losses` and
    :meth:`~lightning_gan.GAN.generator_auxiliary_losses`.

    When the wrapped discriminator is spectrally normalised, so are the heads. The wrapped discriminator
    is unconditional; labels given to the wrapper (a conditional GAN passes them) are ignored, since
    AC-GAN's discriminator predicts the class rather than reading it.

    Args:
        discriminator: An :class:`~lightning_gan.nets.MLPDiscriminator`,
            :class:`~lightning_gan.nets.DCGANDiscriminator` or :class:`~lightning_gan.nets.ResNetDiscriminator`.
        heads: Output size of each head by name, e.g. ``{"class": 10}``; ``{"features": 0}`` for the features.
        hidden: Width of one hidden layer (LeakyReLU 0.2) in each head; 0 (the default) for a single layer.

    Raises:
        TypeError: For a discriminator whose body is unknown, or heads that are not a mapping.
        ValueError: For an empty ``heads``, a head size below 1 (but ``"features": 0``), a negative ``hidden``
            or a conditional discriminator.

    Example:
        >>> import torch
        >>> from lightning_gan.nets import MLPDiscriminator
        >>> d = AuxiliaryHeads(MLPDiscriminator((2,), (16,), maxout_pieces=1, dropout=0.0), {"class": 8})
        >>> logits, heads = d(torch.randn(5, 2))
        >>> tuple(logits.shape), tuple(heads["class"].shape)
        ((5,), (5, 8))
    """

    def __init__(self, discriminator: nn.Module, heads: Mapping[str, int], hidden: int = 0) -> None:
        super().__init__()
        if not isinstance(heads, Mapping) or not heads:
            raise (ValueError if isinstance(heads, Mapping) else TypeError)(
                f"`heads` must be a non-empty mapping of head name to output size, got {heads!r}."
            )
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 0:
            raise ValueError(f"`hidden` must be an integer >= 0, got {hidden!r}.")
        if getattr(discriminator, "num_classes", None) is not None:
            raise ValueError(
                f"AuxiliaryHeads wraps unconditional discriminators, got one with num_classes="
                f"{discriminator.num_classes!r}: an auxiliary classifier predicts the class instead of reading it."
            )
        self.discriminator = discriminator
        self._body, final = _body_and_final(discriminator)
        self.heads = nn.ModuleDict()
        for name, size in heads.items():
            if name == FEATURES and size == 0:
                continue
            self.heads[name] = _head_like(final, _check_positive_int(f"heads[{name!r}]", size), hidden)
        self._features = heads.get(FEATURES) == 0
        if parametrize.is_parametrized(final, "weight"):
            _apply_spectral_norm(self.heads)
        self.image_shape = getattr(discriminator, "image_shape", None)

    def forward(self, x: Tensor, labels: Optional[Tensor] = None) -> tuple[Tensor, dict[str, Tensor]]:
        """Returns the logits, shape ``(N,)``, and each head's output, shape ``(N, size)``."""
        net = getattr(self.discriminator, "net", None)
        features = self._body(x)
        final = net[-1] if isinstance(net, nn.Sequential) else self.discriminator.linear
        logits = final(features).reshape(x.shape[0])
        outputs = {name: head(features) for name, head in self.heads.items()}
        if self._features:
            outputs[FEATURES] = features.flatten(1)
        return logits, outputs

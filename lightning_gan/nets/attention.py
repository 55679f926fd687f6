"""Self-attention block from SAGAN (Zhang et al., 2019).

"Self-Attention Generative Adversarial Networks" (Zhang, Goodfellow, Metaxas
and Odena, 2019): a non-local block that lets every position of a feature map
take a learned, input-dependent average over all other positions, added to
the input through a learnable scale that starts at zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch
from torch import Tensor, nn

from .mlp import _apply_spectral_norm, _check_bool, _check_positive_int, _is_int

__all__ = ["SelfAttention2d"]


def _check_attention_resolution(value: object, allowed: Sequence[int]) -> Optional[int]:
    """``None``, or one of a net's ``allowed`` intermediate feature-map sizes."""
    if value is None:
        return None
    options = tuple(sorted(set(allowed)))
    if not _is_int(value):
        raise TypeError(
            f"attention_resolution must be None or an int, one of {options}, "
            f"got {value!r} of type {type(value).__name__}"
        )
    if value not in options:
        raise ValueError(
            f"attention_resolution must be None or the size of one of this net's intermediate feature maps, "
            f"one of {options}, got {value!r}"
        )
    return int(value)  # type: ignore[arg-type]


class SelfAttention2d(nn.Module):
    r"""SAGAN self-attention block (Zhang et al., 2019): ``x + gamma * o``.

    This is the formulation of the paper's first version (arXiv:1805.08318v1, Section 3),
    also used by the widely used PyTorch port (github.com/heykeetae/Self-Attention-GAN): with
    ``x_i`` the ``C`` features at position ``i`` of an ``(N, C, H, W)`` map,

    * ``f(x) = W_f x`` and ``g(x) = W_g x`` are 1x1 convolutions to ``C' = C // 8`` channels
      (at least 1, so that narrow test nets work), ``h(x) = W_h x`` a 1x1 convolution to ``C``
      channels; none has a bias, as in the paper's linear maps (a bias of ``f`` would cancel
      in the softmax anyway);
    * ``s_ij = f(x_i)^T g(x_j)`` and ``beta_ji = softmax_i(s_ij)``: for each output position
      ``j``, a distribution over all ``H * W`` positions ``i``;
    * ``o_j = sum_i beta_ji h(x_i)`` and the output is ``x + gamma * o``.

    The official TensorFlow code (github.com/brain-research/self-attention-gan) and BigGAN
    use a cheaper variant instead (``h`` to ``C // 2`` channels, keys and values max-pooled
    2x2, and an extra output 1x1 convolution back to ``C``); that is not what this block
    computes.

    ``gamma`` is a learnable scalar initialised at 0, so an untrained block is exactly the
    identity: the net first learns from local features, and attention is blended in as
    ``gamma`` grows. (While ``gamma`` is 0 the convolutions get no gradient; ``gamma`` does,
    and they start learning once it moves.) The convolutions start from Glorot-uniform
    weights, as in the official code; the DCGAN nets re-initialise them with
    :func:`~lightning_gan.nets.dcgan_init_` like all their other convolutions.

    Time and memory grow with ``(H * W) ** 2`` per sample, so the block belongs on
    low-resolution maps (the official SAGAN code puts it on the 32x32 maps of its 128x128
    generator and discriminator).

    Args:
        channels: Channels ``C`` of the input (and output).
        spectral_norm: If ``True``, wrap ``f``, ``g`` and ``h`` with
            :func:`torch.nn.utils.parametrizations.spectral_norm`. ``gamma`` is a scalar
            parameter, not a layer, and is never normalised.

    Attributes:
        channels: ``C``.
        attention_channels: ``C'``, the width of ``f`` and ``g``.
        f: The 1x1 convolution ``W_f`` (keys, the attended positions).
        g: The 1x1 convolution ``W_g`` (queries, the output positions).
        h: The 1x1 convolution ``W_h`` (values).
        gamma: The scalar output scale.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If ``channels`` is not positive; at call time, if the input is not
            ``(N, channels, H, W)``.

    Example:
        >>> import torch
        >>> block = SelfAttention2d(16)
        >>> x = torch.randn(2, 16, 8, 8)
        >>> bool(torch.equal(block(x), x))  # gamma starts at 0: the identity
        True
        >>> _ = block.gamma.data.fill_(1.0)
        >>> y = block(x)
        >>> tuple(y.shape), bool(torch.equal(y, x))
        ((2, 16, 8, 8), False)
    """

    def __init__(self, channels: int, spectral_norm: bool = False) -> None:
        super().__init__()
        self.channels = _check_positive_int("channels", channels)
        _check_bool("spectral_norm", spectral_norm)
        self.attention_channels = max(1, self.channels // 8)
        self.f = nn.Conv2d(self.channels, self.attention_channels, 1, bias=False)
        self.g = nn.Conv2d(self.channels, self.attention_channels, 1, bias=False)
        self.h = nn.Conv2d(self.channels, self.channels, 1, bias=False)
        for conv in (self.f, self.g, self.h):
            nn.init.xavier_uniform_(conv.weight)
        self.gamma = nn.Parameter(torch.zeros(()))
        if spectral_norm:
            _apply_spectral_norm(self)

    def forward(self, x: Tensor) -> Tensor:
        """Attend over all positions of ``x``.

        Args:
            x: Feature map of shape ``(N, channels, H, W)``.

        Returns:
            ``x + gamma * o``, of the same shape.
        """
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(
                f"SelfAttention2d({self.channels}) expects an input of shape (N, {self.channels}, H, W), "
                f"got {tuple(x.shape)}"
            )
        n, c, height, width = x.shape
        keys = self.f(x).flatten(2)  # (N, C', HW): f(x_i)
        queries = self.g(x).flatten(2)  # (N, C', HW): g(x_j)
        values = self.h(x).flatten(2)  # (N, C, HW): h(x_i)
        # scores[:, j, i] = s_ij = f(x_i)^T g(x_j); the softmax runs over i, the attended positions.
        beta = torch.bmm(queries.transpose(1, 2), keys).softmax(dim=-1)
        # o[:, :, j] = sum_i beta[:, j, i] * h(x_i)
        o = torch.bmm(values, beta.transpose(1, 2)).view(n, c, height, width)
        return x + self.gamma * o

    def extra_repr(self) -> str:
        return f"channels={self.channels}, attention_channels={self.attention_channels}"

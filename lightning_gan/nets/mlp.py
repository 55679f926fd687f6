"""Fully connected generator and discriminator from Goodfellow et al. (2014).

The default sizes reproduce the MNIST networks of "Generative Adversarial
Nets" (Goodfellow et al., 2014): a generator with two ReLU hidden layers of
1200 units, and a discriminator with two maxout hidden layers of 240 units x 5
pieces and dropout on the input and hidden layers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Optional

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from .conditioning import ProjectionHead, check_labels, check_num_classes
from .minibatch_std import MinibatchStdDev, _check_minibatch_std_group

__all__ = ["MLPGenerator", "MLPDiscriminator"]

_OUTPUT_ACTIVATIONS = ("tanh", "sigmoid", "identity")
DISCRIMINATOR_CONDITIONINGS = ("projection", "concat")


def _check_bool(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {value!r} of type {type(value).__name__}")


def _check_choice(name: str, value: object, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")
    return str(value)


def _check_embedding_dim(embedding_dim: object, num_classes: Optional[int]) -> int:
    """The label embedding's size: ``num_classes`` when not given (as wide as a one-hot label)."""
    if embedding_dim is None:
        return num_classes or 0
    return _check_positive_int("embedding_dim", embedding_dim)


def _is_int(value: object) -> bool:
    # bool is a subclass of int, but True as a layer width is almost certainly a bug.
    return isinstance(value, int) and not isinstance(value, bool)


def _check_positive_int(name: str, value: object) -> int:
    if not _is_int(value):
        raise TypeError(f"{name} must be an int, got {value!r} of type {type(value).__name__}")
    if value < 1:  # type: ignore[operator]
        raise ValueError(f"{name} must be a positive int (>= 1), got {value!r}")
    return int(value)  # type: ignore[arg-type]


def _check_int_sequence(name: str, value: object, *, allow_empty: bool) -> tuple[int, ...]:
    # A bare int or a string is a Sequence-like mistake, not a shape.
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise TypeError(
            f"{name} must be a sequence of positive ints, got {value!r} of type {type(value).__name__}"
        )
    if not allow_empty and len(value) == 0:
        raise ValueError(f"{name} must be a non-empty sequence of positive ints, got {value!r}")
    for item in value:
        if not _is_int(item):
            raise TypeError(f"{name} must contain only ints, got {value!r}")
        if item < 1:
            raise ValueError(f"{name} must contain only positive ints (>= 1), got {value!r}")
    return tuple(int(item) for item in value)


def _check_probability(name: str, value: object) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a float in [0, 1), got {value!r} of type {type(value).__name__}")
    # p == 1 would zero every unit, which is never a meaningful dropout rate.
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name} must be a float in [0, 1), got {value!r}")
    return float(value)


def _apply_spectral_norm(module: nn.Module) -> None:
    # Embeddings too: a projection discriminator's class embedding is a linear map of the one-hot label
    # (Miyato & Koyama 2018 normalise it as well).
    # Collect first: registering a parametrization adds child modules, which
    # must not happen while module.modules() is still iterating.
    targets = [
        m
        for m in module.modules()
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.Embedding)) and not parametrize.is_parametrized(m, "weight")
    ]
    for m in targets:
        _spectral_norm(m)


class _Maxout(nn.Module):
    """Maxout layer (Goodfellow et al., 2013): max over ``pieces`` affine maps per unit."""

    def __init__(self, in_features: int, units: int, pieces: int) -> None:
        super().__init__()
        self.units = units
        self.pieces = pieces
        self.linear = nn.Linear(in_features, units * pieces)

    def forward(self, x: Tensor) -> Tensor:
        out = self.linear(x)
        return out.view(*out.shape[:-1], self.units, self.pieces).amax(dim=-1)

    def extra_repr(self) -> str:
        return f"units={self.units}, pieces={self.pieces}"


class MLPGenerator(nn.Module):
    """Fully connected GAN generator (Goodfellow et al., 2014, MNIST).

    ``Linear -> ReLU`` hidden layers followed by a ``Linear`` to
    ``prod(output_shape)`` values and an output nonlinearity, reshaped to
    ``output_shape``.

    Args:
        latent_dim: Size of the latent vector ``z``.
        output_shape: Shape of one generated sample, e.g. ``(1, 28, 28)`` for
            MNIST or ``(2,)`` for 2-D toy data.
        hidden_dims: Widths of the ReLU hidden layers. May be empty.
        output_activation: ``"tanh"`` for data scaled to ``[-1, 1]``,
            ``"sigmoid"`` for data in ``[0, 1]``, ``"identity"`` for
            unbounded data such as 2-D toy distributions.
        num_classes: Makes the generator class-conditional (Mirza & Osindero,
            2014): a learned embedding of the label is concatenated to ``z``,
            and the net is called as ``g(z, labels)``. ``None``: unconditional.
        embedding_dim: Size of the label embedding (default ``num_classes``).

    Attributes:
        latent_dim: Size of the latent vector.
        output_shape: Shape of one generated sample, as a tuple.
        num_classes: Number of classes, or ``None`` when unconditional.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If a size is not positive or ``output_activation`` is unknown.

    Example:
        >>> import torch
        >>> g = MLPGenerator(latent_dim=8, output_shape=(1, 4, 4), hidden_dims=(16,))
        >>> x = g(torch.randn(3, 8))
        >>> tuple(x.shape)
        (3, 1, 4, 4)
        >>> bool(x.abs().max() <= 1)
        True
        >>> cg = MLPGenerator(latent_dim=8, output_shape=(2,), hidden_dims=(16,), num_classes=3)
        >>> tuple(cg(torch.randn(4, 8), torch.tensor([0, 1, 2, 0])).shape)
        (4, 2)
    """

    def __init__(
        self,
        latent_dim: int,
        output_shape: Sequence[int],
        hidden_dims: Sequence[int] = (1200, 1200),
        output_activation: str = "tanh",
        num_classes: Optional[int] = None,
        embedding_dim: Optional[int] = None,
    ) -> None:
        super().__init__()
        self.latent_dim = _check_positive_int("latent_dim", latent_dim)
        self.output_shape: tuple[int, ...] = _check_int_sequence(
            "output_shape", output_shape, allow_empty=False
        )
        hidden = _check_int_sequence("hidden_dims", hidden_dims, allow_empty=True)
        if output_activation not in _OUTPUT_ACTIVATIONS:
            raise ValueError(
                f"output_activation must be one of {_OUTPUT_ACTIVATIONS}, got {output_activation!r}"
            )
        self.output_activation = output_activation
        self.num_classes = check_num_classes(num_classes)
        embedding = _check_embedding_dim(embedding_dim, self.num_classes)
        self.label_embedding = nn.Embedding(self.num_classes, embedding) if self.num_classes else None

        layers: list[nn.Module] = []
        in_features = self.latent_dim + embedding
        for width in hidden:
            layers += [nn.Linear(in_features, width), nn.ReLU(inplace=True)]
            in_features = width
        layers.append(nn.Linear(in_features, math.prod(self.output_shape)))
        layers.append(
            {"tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "identity": nn.Identity}[output_activation]()
        )
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor, labels: Optional[Tensor] = None) -> Tensor:
        """Map latent vectors (and, when conditional, class labels) to samples.

        Args:
            z: Latent batch of shape ``(N, latent_dim)``.
            labels: Class indices of shape ``(N,)``; required exactly when ``num_classes`` is set.

        Returns:
            Samples of shape ``(N, *output_shape)``.
        """
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(
                f"z must have shape (N, {self.latent_dim}), got {tuple(z.shape)}"
            )
        check_labels(labels, self.num_classes, z.shape[0], "MLPGenerator")
        if self.label_embedding is not None:
            z = torch.cat([z, self.label_embedding(labels)], dim=1)
        return self.net(z).view(z.shape[0], *self.output_shape)


class MLPDiscriminator(nn.Module):
    """Fully connected maxout GAN discriminator (Goodfellow et al., 2014, MNIST).

    The input is flattened, passed through dropout, then through maxout hidden
    layers (each followed by dropout) and a final ``Linear`` to one logit.
    With ``maxout_pieces=1`` a maxout unit degenerates to a plain affine map,
    so ``LeakyReLU(0.2)`` is used as the nonlinearity instead.

    Args:
        input_shape: Shape of one sample, e.g. ``(1, 28, 28)``.
        hidden_dims: Number of units in each hidden layer. May be empty.
        maxout_pieces: Affine pieces per maxout unit; ``1`` selects
            ``Linear -> LeakyReLU(0.2)`` hidden layers.
        dropout: Either a pair ``(input_p, hidden_p)`` of drop probabilities
            for the input and for every hidden layer, or a single float used
            everywhere. ``0.0`` disables dropout. Probabilities must lie in
            ``[0, 1)``. The default ``(0.2, 0.5)`` matches the paper's
            inclusion probabilities of 0.8 and 0.5.
        spectral_norm: If ``True``, wrap every ``Linear`` (including those
            inside the maxout layers, and the class embedding of a projection
            discriminator) with
            :func:`torch.nn.utils.parametrizations.spectral_norm`.
        num_classes: Makes the discriminator class-conditional, called as
            ``d(x, labels)``. ``None``: unconditional.
        conditioning: How a conditional discriminator sees the label:
            ``"projection"`` adds ``<embed(y), h>`` to the logit, where ``h``
            is the last hidden layer (Miyato & Koyama, 2018); ``"concat"``
            appends the one-hot label to the flattened input (Mirza & Osindero,
            2014).
        minibatch_std_group: Insert a ProGAN minibatch standard deviation layer
            (:class:`~lightning_gan.nets.MinibatchStdDev` with this group size,
            4 in ProGAN) before the final ``Linear``, which then reads one
            feature more (and so does the projection head). The batch size
            must be a multiple of the group size, or smaller than it. This
            couples the samples of a batch, as batch norm does: a per-sample
            gradient penalty's assumption (WGAN-GP, R1) no longer holds
            exactly. ``None``: no such layer.

    Attributes:
        input_shape: Shape of one sample, as a tuple.
        num_classes: Number of classes, or ``None`` when unconditional.
        minibatch_std_group: The minibatch standard deviation group size, or ``None``.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If a size or probability is out of range, or
            ``minibatch_std_group`` is below 2.

    Example:
        >>> import torch
        >>> d = MLPDiscriminator(input_shape=(1, 4, 4), hidden_dims=(8,), maxout_pieces=2)
        >>> tuple(d(torch.randn(3, 1, 4, 4)).shape)
        (3,)
        >>> cd = MLPDiscriminator(input_shape=(2,), hidden_dims=(8,), num_classes=3, conditioning="concat")
        >>> tuple(cd(torch.randn(2, 2), torch.tensor([2, 0])).shape)
        (2,)
        >>> md = MLPDiscriminator(input_shape=(2,), hidden_dims=(8,), minibatch_std_group=4)
        >>> md.net[-1].in_features, tuple(md(torch.randn(8, 2)).shape)
        (9, (8,))
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        hidden_dims: Sequence[int] = (240, 240),
        maxout_pieces: int = 5,
        dropout: Sequence[float] | float = (0.2, 0.5),
        spectral_norm: bool = False,
        num_classes: Optional[int] = None,
        conditioning: str = "projection",
        minibatch_std_group: Optional[int] = None,
    ) -> None:
        super().__init__()
        self.input_shape: tuple[int, ...] = _check_int_sequence(
            "input_shape", input_shape, allow_empty=False
        )
        hidden = _check_int_sequence("hidden_dims", hidden_dims, allow_empty=True)
        pieces = _check_positive_int("maxout_pieces", maxout_pieces)
        input_p, hidden_p = self._parse_dropout(dropout)
        _check_bool("spectral_norm", spectral_norm)

        self.num_classes = check_num_classes(num_classes)
        self.conditioning = _check_choice("conditioning", conditioning, DISCRIMINATOR_CONDITIONINGS)
        concat = self.num_classes is not None and self.conditioning == "concat"
        self.minibatch_std_group = _check_minibatch_std_group(minibatch_std_group)

        layers: list[nn.Module] = [nn.Flatten(1)]
        if input_p > 0:
            layers.append(nn.Dropout(input_p))
        # Where the one-hot label joins the (flattened, dropped-out) input.
        self._concat_at = len(layers) if concat else -1
        in_features = math.prod(self.input_shape) + (self.num_classes if concat else 0)
        for width in hidden:
            if pieces == 1:
                layers += [nn.Linear(in_features, width), nn.LeakyReLU(0.2, inplace=True)]
            else:
                layers.append(_Maxout(in_features, width, pieces))
            if hidden_p > 0:
                layers.append(nn.Dropout(hidden_p))
            in_features = width
        if self.minibatch_std_group is not None:
            # ProGAN's place: right before the last layer, which reads the statistic as one more feature.
            layers.append(MinibatchStdDev(self.minibatch_std_group))
            in_features += 1
        layers.append(nn.Linear(in_features, 1))
        self.net = nn.Sequential(*layers)
        projection = self.num_classes is not None and self.conditioning == "projection"
        self.projection = ProjectionHead(self.num_classes, in_features) if projection else None

        if spectral_norm:
            _apply_spectral_norm(self)

    @staticmethod
    def _parse_dropout(dropout: Sequence[float] | float) -> tuple[float, float]:
        if isinstance(dropout, Sequence) and not isinstance(dropout, str):
            if len(dropout) != 2:
                raise ValueError(
                    f"dropout must be a float or a pair (input_p, hidden_p), got {dropout!r}"
                )
            return (
                _check_probability("dropout[0]", dropout[0]),
                _check_probability("dropout[1]", dropout[1]),
            )
        p = _check_probability("dropout", dropout)
        return p, p

    def forward(self, x: Tensor, labels: Optional[Tensor] = None) -> Tensor:
        """Score a batch of samples (against their class labels, when conditional).

        Args:
            x: Batch of shape ``(N, *input_shape)``.
            labels: Class indices of shape ``(N,)``; required exactly when ``num_classes`` is set.

        Returns:
            Real-vs-fake logits of shape ``(N,)``.
        """
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(
                f"x must have shape (N, {', '.join(map(str, self.input_shape))}), got {tuple(x.shape)}"
            )
        check_labels(labels, self.num_classes, x.shape[0], "MLPDiscriminator")
        if self.num_classes is None:
            return self.net(x).squeeze(-1)
        h = x
        for index, layer in enumerate(self.net):
            if index == self._concat_at:
                h = torch.cat([h, nn.functional.one_hot(labels, self.num_classes).to(h.dtype)], dim=1)
            if index == len(self.net) - 1 and self.projection is not None:
                return layer(h).squeeze(-1) + self.projection(h, labels)
            h = layer(h)
        return h.squeeze(-1)

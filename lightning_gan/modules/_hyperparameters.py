"""Constructor arguments of the GAN module: what the discriminator returns, and what a checkpoint needs to rebuild it."""

from __future__ import annotations

import inspect
import warnings
from typing import Any, Optional

from torch import nn

from lightning_gan import losses
from lightning_gan.modules._support import _last_layer


_DISCRIMINATOR_OUTPUTS = ("logits", "probabilities", "scores")


def _discriminator_outputs(discriminator: nn.Module, outputs: Optional[str], loss: losses.AdversarialLoss) -> str:
    """What the discriminator returns (the argument, or inferred), warning when the loss expects something else."""
    if outputs is not None and outputs not in _DISCRIMINATOR_OUTPUTS:
        raise ValueError(
            f"`discriminator_outputs` must be None or one of {', '.join(map(repr, _DISCRIMINATOR_OUTPUTS))}, got {outputs!r}."
        )
    ends_in_sigmoid = isinstance(_last_layer(discriminator), nn.Sigmoid)
    if loss.probabilistic and (ends_in_sigmoid or outputs == "probabilities"):
        warnings.warn(
            f"The discriminator {'ends in nn.Sigmoid' if ends_in_sigmoid else 'returns probabilities'} but "
            f"loss={loss.name!r} takes logits and applies the sigmoid itself, so it trains on sigmoid(probability): "
            "remove the final Sigmoid from the discriminator. Logged d_real/d_fake show its outputs as they are.",
            UserWarning,
            stacklevel=4,
        )
    if outputs is not None:
        return outputs
    if ends_in_sigmoid:
        return "probabilities"
    return "logits" if loss.probabilistic else "scores"


def _outermost_init_keys(frame: Any, base: type) -> Optional[set[str]]:
    """The arguments the most specific class's ``__init__`` received (its ``**kwargs`` expanded)."""
    from pytorch_lightning.utilities.parsing import collect_init_args

    try:
        levels = collect_init_args(frame, [], classes=(base,))
    finally:
        del frame
    return set(levels[-1]) if levels else None


def _keep_reconstruction_hyperparameters(module: Any, checkpoint: dict[str, Any], base: type) -> None:
    """Saves only what rebuilds a subclass taking ``**kwargs``, so ``load_from_checkpoint`` works.

    Lightning saves the arguments of every ``__init__`` in the chain and, for a class taking ``**kwargs``,
    passes all of them back on reload. A subclass that forwards its own names (the Lightning GAN
    tutorial's ``lr``, ``b1``, ``b2`` as ``lr_g=lr, betas=(b1, b2)``, plus ``**kwargs``) would then get
    ``lr_g`` twice: ``GAN.__init__() got multiple values for keyword argument 'lr_g'``. The module's own
    ``hparams`` keep every value (GAN's included) for loggers.
    """
    saved = checkpoint.get("hyper_parameters")
    keys = module._reconstruction_keys
    init = type(module).__init__
    takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(init).parameters.values())
    if isinstance(saved, dict) and keys is not None and takes_kwargs and type(module) is not base:
        checkpoint["hyper_parameters"] = {k: v for k, v in saved.items() if k in keys}

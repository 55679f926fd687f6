"""AuxiliaryHeads: heads that share the discriminator's body, for each of the package's discriminators."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils import parametrize

from lightning_gan.nets import AuxiliaryHeads, DCGANDiscriminator, MLPDiscriminator, ResNetDiscriminator

DISCRIMINATORS = {
    "mlp": (lambda: MLPDiscriminator((2,), (8, 8), maxout_pieces=1, dropout=0.0), (2,)),
    "dcgan": (lambda: DCGANDiscriminator(16, 1, 4, normalization="layer"), (1, 16, 16)),
    "resnet": (lambda: ResNetDiscriminator(32, 3, 4, spectral_norm=True), (3, 32, 32)),
}


@pytest.mark.parametrize("kind", sorted(DISCRIMINATORS))
def test_the_logit_is_the_wrapped_discriminators_and_the_heads_read_its_body(kind):
    build, shape = DISCRIMINATORS[kind]
    torch.manual_seed(0)
    plain = build()
    wrapped = AuxiliaryHeads(plain, {"class": 5, "features": 0}, hidden=3)
    x = torch.randn(4, *shape)
    plain.eval(), wrapped.eval()  # spectral norm would run a power iteration per call in training mode
    logits, heads = wrapped(x, torch.zeros(4, dtype=torch.long))  # labels (from a conditional GAN) are ignored
    assert torch.allclose(logits, plain(x), atol=1e-6)
    assert heads["class"].shape == (4, 5) and heads["features"].shape[0] == 4
    # The heads share the body: the class head's gradient reaches the discriminator's first layer.
    wrapped.zero_grad()
    heads["class"].sum().backward()
    first = next(p for name, p in plain.named_parameters() if "weight" in name)
    assert first.grad is not None and first.grad.abs().sum() > 0
    # A spectrally normalised discriminator gets spectrally normalised heads.
    head_layers = [m for m in wrapped.heads.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    assert all(parametrize.is_parametrized(m, "weight") == (kind == "resnet") for m in head_layers)


def test_refusals():
    with pytest.raises(ValueError, match="non-empty mapping"):
        AuxiliaryHeads(MLPDiscriminator((2,), (8,)), {})
    with pytest.raises(ValueError, match="wraps unconditional discriminators"):
        AuxiliaryHeads(MLPDiscriminator((2,), (8,), num_classes=3), {"class": 3})
    with pytest.raises(TypeError, match="cannot find the body of a Linear"):
        AuxiliaryHeads(torch.nn.Linear(2, 1), {"class": 3})
    with pytest.raises(ValueError, match="`hidden` must be an integer >= 0"):
        AuxiliaryHeads(MLPDiscriminator((2,), (8,)), {"class": 3}, hidden=-1)

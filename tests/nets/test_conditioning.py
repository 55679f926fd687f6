"""Conditional variants of the MLP and DCGAN nets, and their building blocks."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from lightning_gan.nets import (
    ConditionalBatchNorm2d,
    DCGANDiscriminator,
    DCGANGenerator,
    MLPDiscriminator,
    MLPGenerator,
    ProjectionHead,
)
from lightning_gan.nets.conditioning import check_labels

LABELS = torch.tensor([0, 1, 2, 3])


def conditional_nets():
    return [
        ("mlp-g", MLPGenerator(8, (1, 28, 28), (16,), num_classes=4), torch.randn(4, 8)),
        ("mlp-d-projection", MLPDiscriminator((1, 28, 28), (16,), 2, num_classes=4), torch.randn(4, 1, 28, 28)),
        ("mlp-d-concat", MLPDiscriminator((2,), (16,), 1, 0.0, num_classes=4, conditioning="concat"), torch.randn(4, 2)),
        ("dcgan-g-bn", DCGANGenerator(8, 28, 1, 4, num_classes=4, conditioning="batch_norm"), torch.randn(4, 8)),
        ("dcgan-g-embedding", DCGANGenerator(8, 32, 3, 4, num_classes=4, conditioning="embedding"), torch.randn(4, 8)),
        ("dcgan-d-projection", DCGANDiscriminator(32, 3, 4, "none", num_classes=4), torch.randn(4, 3, 32, 32)),
        ("dcgan-d-concat", DCGANDiscriminator(28, 1, 4, num_classes=4, conditioning="concat"), torch.randn(4, 1, 28, 28)),
    ]


@pytest.mark.parametrize("name,net,x", conditional_nets(), ids=[n for n, _, _ in conditional_nets()])
def test_conditional_nets_need_labels_and_the_labels_change_the_output(name, net, x):
    net.eval()  # batch norm in eval mode: the output of a sample does not depend on the others
    for module in net.modules():
        if isinstance(module, ConditionalBatchNorm2d):  # fresh CBN is plain BN (gain 1, bias 0) for every class
            nn.init.normal_(module.gain.weight, 1.0, 0.5)
            nn.init.normal_(module.bias.weight, 0.0, 0.5)
    out = net(x, LABELS)
    assert out.shape[0] == 4 and torch.isfinite(out).all()
    shifted = net(x, (LABELS + 1) % 4)
    assert not torch.allclose(out, shifted)
    # Per sample: the same input with the same label gives the same output whatever the other rows are.
    assert torch.allclose(net(x[:1], LABELS[:1]), out[:1], atol=1e-5)
    with pytest.raises(ValueError, match="class-conditional"):
        net(x)
    with pytest.raises(TypeError, match="integer"):
        net(x, LABELS.float())
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        net(x, LABELS[:3])


def test_unconditional_nets_refuse_labels_and_keep_their_parameter_names():
    for net, x in ((MLPGenerator(8, (2,), (16,)), torch.randn(4, 8)), (DCGANDiscriminator(28, 1, 4), torch.randn(4, 1, 28, 28))):
        with pytest.raises(ValueError, match="unconditional"):
            net(x, LABELS)
    # Checkpoints of unconditional nets written before conditioning existed still load.
    assert sorted(DCGANDiscriminator(28, 1, 4).state_dict()) == [
        "net.0.bias", "net.0.weight", "net.2.weight", "net.3.bias", "net.3.num_batches_tracked",
        "net.3.running_mean", "net.3.running_var", "net.3.weight", "net.5.bias", "net.5.weight",
    ]


def test_projection_discriminator_is_psi_plus_the_class_inner_product():
    d = MLPDiscriminator((2,), (16,), 1, 0.0, num_classes=3).eval()
    x = torch.randn(5, 2)
    labels = torch.tensor([0, 1, 2, 1, 0])
    hidden = d.net[:-1](x)
    expected = d.net[-1](hidden).squeeze(-1) + (d.projection.embedding.weight[labels] * hidden).sum(1)
    assert torch.allclose(d(x, labels), expected, atol=1e-6)


def test_concat_discriminator_sees_the_one_hot_label_as_extra_input():
    d = DCGANDiscriminator(28, 1, 4, "none", num_classes=10, conditioning="concat")
    assert d.net[0].in_channels == 1 + 10
    mlp = MLPDiscriminator((2,), (8,), 1, 0.0, num_classes=5, conditioning="concat")
    assert mlp.net[1].in_features == 2 + 5


def test_conditional_batch_norm_is_batch_norm_with_a_gain_and_bias_per_class():
    cbn = ConditionalBatchNorm2d(3, num_classes=2)
    with torch.no_grad():
        cbn.gain.weight.copy_(torch.tensor([[1.0, 2.0, 3.0], [0.5, 0.5, 0.5]]))
        cbn.bias.weight.copy_(torch.tensor([[0.0, 1.0, 0.0], [-1.0, -1.0, -1.0]]))
    x = torch.randn(6, 3, 4, 4)
    labels = torch.tensor([0, 1, 0, 1, 1, 0])
    normalised = nn.functional.batch_norm(x, None, None, training=True)
    expected = normalised * cbn.gain.weight[labels][:, :, None, None] + cbn.bias.weight[labels][:, :, None, None]
    assert torch.allclose(cbn(x, labels), expected, atol=1e-5)


def test_projection_head_and_label_checks():
    head = ProjectionHead(3, 4)
    features = torch.randn(2, 4)
    assert torch.allclose(head(features, torch.tensor([2, 0])), (head.embedding.weight[[2, 0]] * features).sum(1))
    check_labels(None, None, 4, "net")
    with pytest.raises(TypeError, match="integer"):
        check_labels(torch.ones(4, dtype=torch.bool), 3, 4, "net")
    with pytest.raises(ValueError, match="num_classes"):
        MLPGenerator(8, (2,), num_classes=1)
    with pytest.raises(TypeError, match="num_classes"):
        DCGANGenerator(8, 28, 1, 4, num_classes=2.0)
    with pytest.raises(ValueError, match="conditioning"):
        DCGANGenerator(8, 28, 1, 4, num_classes=2, conditioning="film")
    with pytest.raises(ValueError, match="conditioning"):
        MLPDiscriminator((2,), num_classes=2, conditioning="auxiliary")


def test_spectral_norm_covers_the_projection_embedding():
    d = DCGANDiscriminator(28, 1, 4, "none", spectral_norm=True, num_classes=10)
    assert parametrize.is_parametrized(d.projection.embedding, "weight")
    for _ in range(30):  # power iterations run on training-mode forwards
        d(torch.randn(4, 1, 28, 28), torch.randint(10, (4,)))
    d.eval()
    for module in d.modules():
        if parametrize.is_parametrized(module, "weight"):
            sigma = torch.linalg.matrix_norm(module.weight.detach().flatten(1), ord=2)
            assert sigma == pytest.approx(1.0, rel=0.05)

import re

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from lightning_gan.nets import (
    DCGANDiscriminator,
    DCGANGenerator,
    ResNetDiscriminator,
    ResNetGenerator,
    SelfAttention2d,
)


def _reference(block: SelfAttention2d, x: torch.Tensor) -> torch.Tensor:
    """SAGAN (arXiv:1805.08318v1, Sec. 3) written out: s_ij = f(x_i)^T g(x_j), beta_ji = softmax_i, o_j = sum_i."""
    wf, wg, wh = (conv.weight[:, :, 0, 0] for conv in (block.f, block.g, block.h))
    flat = x.flatten(2)  # (N, C, P)
    f, g, h = (torch.einsum("oc,ncp->nop", w, flat) for w in (wf, wg, wh))
    s = torch.einsum("nki,nkj->nij", f, g)  # s[n, i, j]
    beta = torch.softmax(s, dim=1)  # normalised over i, for each j
    o = torch.einsum("nij,nci->ncj", beta, h)
    return x + block.gamma * o.view_as(x)


def _attention(net: nn.Module) -> SelfAttention2d:
    (block,) = [m for m in net.modules() if isinstance(m, SelfAttention2d)]
    return block


def _attention_name(net: nn.Module) -> str:
    (name,) = [name for name, m in net.named_modules() if isinstance(m, SelfAttention2d)]
    return name


def _set_submodule(net: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(net.get_submodule(parent_name) if parent_name else net, child, new)


# --------------------------------------------------------------------------- the block


def test_block_is_identity_at_init():
    block = SelfAttention2d(16)
    assert block.gamma.shape == () and block.gamma.item() == 0.0
    x = torch.randn(2, 16, 5, 4)
    assert torch.equal(block(x), x)


def test_block_matches_reference_formula():
    block = SelfAttention2d(16).double()
    with torch.no_grad():
        block.gamma.fill_(0.7)
    x = torch.randn(2, 16, 5, 3, dtype=torch.float64)
    torch.testing.assert_close(block(x), _reference(block, x), rtol=0, atol=1e-6)
    assert not torch.allclose(block(x), x)


def test_block_layers_and_gradients():
    block = SelfAttention2d(16)
    assert block.attention_channels == 2
    assert [(c.in_channels, c.out_channels, c.bias) for c in (block.f, block.g, block.h)] == [
        (16, 2, None),
        (16, 2, None),
        (16, 16, None),
    ]
    assert SelfAttention2d(4).attention_channels == 1  # at least one channel for narrow nets
    with torch.no_grad():
        block.gamma.fill_(1.0)
    (block(torch.randn(2, 16, 4, 4)) ** 2).sum().backward()
    for name, p in block.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_block_spectral_norm_spares_gamma():
    block = SelfAttention2d(16, spectral_norm=True)
    assert all(parametrize.is_parametrized(conv, "weight") for conv in (block.f, block.g, block.h))
    assert not parametrize.is_parametrized(block)
    assert isinstance(block.gamma, nn.Parameter) and block.gamma.shape == ()
    assert torch.equal(block(torch.ones(1, 16, 2, 2)), torch.ones(1, 16, 2, 2))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"channels": 0}, ValueError, "channels.*0"),
        ({"channels": 8.0}, TypeError, "channels.*8.0"),
        ({"channels": 8, "spectral_norm": 1}, TypeError, "spectral_norm"),
    ],
)
def test_block_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        SelfAttention2d(**kwargs)


def test_block_rejects_wrong_input():
    with pytest.raises(ValueError, match=r"\(N, 8, H, W\).*\(2, 4, 3, 3\)"):
        SelfAttention2d(8)(torch.randn(2, 4, 3, 3))


# --------------------------------------------------------------------------- in the nets

# (builder, input maker, resolution, expected map shape at the block (C, H, W))
NETS = {
    "dcgan-g": (
        lambda r, **kw: DCGANGenerator(latent_dim=4, image_size=32, features=2, attention_resolution=r, **kw),
        lambda: (torch.randn(2, 4),),
        8,
        (4, 8, 8),
    ),
    "dcgan-d": (
        lambda r, **kw: DCGANDiscriminator(32, 3, features=2, attention_resolution=r, **kw),
        lambda: (torch.randn(2, 3, 32, 32),),
        8,
        (4, 8, 8),
    ),
    "resnet-g": (
        lambda r, **kw: ResNetGenerator(latent_dim=4, image_size=48, features=4, attention_resolution=r, **kw),
        lambda: (torch.randn(2, 4),),
        12,
        (4, 12, 12),
    ),
    "resnet-d": (
        lambda r, **kw: ResNetDiscriminator(image_size=32, features=2, attention_resolution=r, **kw),
        lambda: (torch.randn(2, 3, 32, 32),),
        8,
        (2, 8, 8),
    ),
}


@pytest.mark.parametrize("kind", NETS)
def test_attention_in_nets(kind):
    build, inputs, resolution, map_shape = NETS[kind]
    net = build(resolution).eval()  # eval: fixed batch-norm statistics and spectral-norm weights
    block, name = _attention(net), _attention_name(net)
    assert net.attention_resolution == resolution
    seen = []
    block.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape[1:])))
    args = inputs()
    at_init = net(*args)
    assert seen == [map_shape]
    # gamma = 0: the block is the identity, so the net computes what it would without it.
    _set_submodule(net, name, nn.Identity())
    torch.testing.assert_close(net(*args), at_init, rtol=0, atol=0)
    _set_submodule(net, name, block)
    with torch.no_grad():
        block.gamma.fill_(1.0)
    out = net(*args)
    assert not torch.allclose(out, at_init)
    out.square().sum().backward()
    for name, p in block.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient for attention {name}"


@pytest.mark.parametrize("kind", NETS)
def test_no_attention_by_default(kind):
    build = NETS[kind][0]
    net = build(None)
    assert net.attention_resolution is None
    assert not any(isinstance(m, SelfAttention2d) for m in net.modules())
    assert not any("attention" in name for name in net.state_dict())


@pytest.mark.parametrize(
    "build, valid",
    [
        (lambda r: DCGANGenerator(image_size=32, features=2, attention_resolution=r), "(4, 8, 16)"),
        (lambda r: DCGANGenerator(image_size=28, features=2, attention_resolution=r), "(7, 14)"),
        (lambda r: DCGANDiscriminator(image_size=64, features=2, attention_resolution=r), "(4, 8, 16, 32)"),
        (lambda r: ResNetGenerator(image_size=128, features=4, attention_resolution=r), "(4, 8, 16, 32, 64)"),
        (lambda r: ResNetDiscriminator(image_size=28, features=2, attention_resolution=r), "(7, 14)"),
        (lambda r: ResNetDiscriminator(image_size=48, features=2, attention_resolution=r), "(3, 6, 12, 24)"),
    ],
)
def test_attention_resolution_validation(build, valid):
    for bad in (2, 128, 0):
        with pytest.raises(ValueError, match=rf"attention_resolution .*one of {re.escape(valid)}, got {bad}"):
            build(bad)
    with pytest.raises(TypeError, match=r"attention_resolution.*'8'"):
        build("8")


def test_conditional_nets_with_attention():
    labels = torch.tensor([0, 2])
    g = DCGANGenerator(latent_dim=4, image_size=16, features=2, num_classes=3, conditioning="batch_norm",
                       attention_resolution=8)  # fmt: skip
    assert g(torch.randn(2, 4), labels).shape == (2, 3, 16, 16)
    d = DCGANDiscriminator(16, 3, features=2, num_classes=3, attention_resolution=4)
    assert d(torch.randn(2, 3, 16, 16), labels).shape == (2,)
    rg = ResNetGenerator(latent_dim=4, image_size=28, features=2, num_classes=3, attention_resolution=7)
    assert rg(torch.randn(2, 4), labels).shape == (2, 3, 28, 28)
    rd = ResNetDiscriminator(image_size=28, features=2, num_classes=3, attention_resolution=14)
    assert rd(torch.randn(2, 3, 28, 28), labels).shape == (2,)


@pytest.mark.parametrize(
    "build",
    [
        lambda: DCGANDiscriminator(16, 3, features=2, spectral_norm=True, attention_resolution=8),
        lambda: ResNetDiscriminator(image_size=32, features=2, spectral_norm=True, attention_resolution=16),
    ],
)
def test_spectral_norm_covers_attention_convs_not_gamma(build):
    block = _attention(build())
    assert all(parametrize.is_parametrized(conv, "weight") for conv in (block.f, block.g, block.h))
    assert not parametrize.is_parametrized(block)
    assert [name for name, _ in block.named_parameters() if "original" not in name] == ["gamma"]


def test_dcgan_attention_takes_the_nets_init():
    torch.manual_seed(0)
    g = DCGANGenerator(latent_dim=4, image_size=64, features=32, attention_resolution=16)
    block = _attention(g)
    assert abs(block.h.weight.std().item() - 0.02) < 0.004  # dcgan_init_'s N(0, 0.02)
    assert block.gamma.item() == 0.0

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from lightning_gan.nets.conditioning import ConditionalBatchNorm2d
from lightning_gan.nets.resnet import (
    ResNetDiscriminator,
    ResNetGenerator,
    _discriminator_plan,
    _generator_plan,
)

SIZES = [28, 32, 64]
# Small widths keep every test well under a second on CPU.
F = 8
Z = 16


def _labels(*values: int) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.long)


def _parametrized(module: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in module.named_modules() if parametrize.is_parametrized(m, "weight")]


# --------------------------------------------------------------------------- generator


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("channels", [1, 3])
def test_generator_output_shape_and_range(size, channels):
    torch.manual_seed(0)
    g = ResNetGenerator(latent_dim=Z, image_size=size, channels=channels, features=F)
    out = g(torch.randn(2, Z))
    assert out.shape == (2, channels, size, size)
    assert g.image_shape == (channels, size, size)
    assert g.latent_dim == Z
    assert g.num_classes is None
    assert out.abs().max() <= 1  # tanh output


@pytest.mark.parametrize("size, blocks", [(28, 2), (32, 3), (64, 4)])
def test_generator_architecture(size, blocks):
    g = ResNetGenerator(latent_dim=Z, image_size=size, features=F)
    assert len(g.blocks) == blocks
    base = {28: 7, 32: 4, 64: 4}[size]
    assert g.linear.out_features == F * base * base
    # Unconditional: plain batch norms only, one per residual conv plus the final one.
    assert not any(isinstance(m, ConditionalBatchNorm2d) for m in g.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in g.modules()) == 2 * blocks + 1


def test_generator_conditional_norms():
    g = ResNetGenerator(latent_dim=Z, features=F, num_classes=5)
    assert g.num_classes == 5
    assert sum(isinstance(m, ConditionalBatchNorm2d) for m in g.modules()) == 2 * len(g.blocks)
    # The final norm stays unconditional, as in the reference.
    assert type(g.output_norm) is nn.BatchNorm2d


def test_generator_init_gains():
    torch.manual_seed(0)
    g = ResNetGenerator(latent_dim=Z, features=64)
    block = g.blocks[0]
    # Glorot-uniform bound is gain * sqrt(6 / (fan_in + fan_out)).
    bound = 2**0.5 * (6 / (64 * 9 + 64 * 9)) ** 0.5
    assert block.conv1.weight.abs().max() <= bound
    assert block.conv1.weight.abs().max() > 0.9 * bound
    sc_bound = (6 / (64 + 64)) ** 0.5
    assert sc_bound * 0.9 < block.shortcut.weight.abs().max() <= sc_bound


@pytest.mark.parametrize("shape", [(2, Z + 1), (2, Z, 1, 1), (Z,)])
def test_generator_rejects_bad_latent_shape(shape):
    g = ResNetGenerator(latent_dim=Z, features=F)
    with pytest.raises(ValueError, match=r"z must have shape \(N, 16\)"):
        g(torch.randn(*shape))


def test_generator_labels_validation():
    cond = ResNetGenerator(latent_dim=Z, features=F, num_classes=3)
    uncond = ResNetGenerator(latent_dim=Z, features=F)
    z = torch.randn(2, Z)
    with pytest.raises(ValueError, match="class-conditional"):
        cond(z)
    with pytest.raises(ValueError, match="unconditional"):
        uncond(z, _labels(0, 1))
    with pytest.raises(TypeError, match="integer"):
        cond(z, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="shape"):
        cond(z, _labels(0, 1, 2))


def test_generator_labels_change_output():
    torch.manual_seed(0)
    g = ResNetGenerator(latent_dim=Z, features=F, num_classes=3)
    # Conditional norms start as plain batch norm (gain 1, bias 0), so labels
    # only matter once the per-class parameters have moved apart.
    with torch.no_grad():
        for m in g.modules():
            if isinstance(m, ConditionalBatchNorm2d):
                m.gain.weight.normal_(1.0, 0.5)
                m.bias.weight.normal_(0.0, 0.5)
    g.eval()
    z = torch.randn(2, Z)
    a, b = g(z, _labels(0, 0)), g(z, _labels(1, 2))
    assert a.shape == (2, 3, 32, 32)
    assert not torch.allclose(a, b)
    # The same labels give the same images.
    torch.testing.assert_close(a, g(z, _labels(0, 0)))


# --------------------------------------------------------------------------- discriminator


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("channels", [1, 3])
def test_discriminator_output_shape(size, channels):
    d = ResNetDiscriminator(image_size=size, channels=channels, features=F)
    out = d(torch.randn(3, channels, size, size))
    assert out.shape == (3,)
    assert torch.isfinite(out).all()
    assert d.image_shape == (channels, size, size)
    assert d.num_classes is None


@pytest.mark.parametrize("size, down_blocks, final", [(28, 2, 7), (32, 2, 8), (64, 3, 8)])
def test_discriminator_architecture(size, down_blocks, final):
    d = ResNetDiscriminator(image_size=size, features=F, spectral_norm=False)
    assert [b.downsample for b in d.blocks] == [True] * down_blocks + [False, False]
    # The last two blocks keep the width, so their shortcut is the identity.
    assert d.blocks[-1].shortcut is None and d.blocks[-2].shortcut is None
    assert d.blocks(torch.randn(1, 3, size, size)).shape == (1, F, final, final)
    # Per-sample scoring, as a gradient penalty requires: no batch statistics.
    assert not any(isinstance(m, nn.modules.batchnorm._NormBase) for m in d.modules())


def test_discriminator_scores_samples_independently():
    torch.manual_seed(0)
    d = ResNetDiscriminator(image_size=28, channels=1, features=F)
    x = torch.randn(4, 1, 28, 28)
    d.eval()  # freeze the power iteration so both calls see the same weights
    torch.testing.assert_close(d(x)[:2], d(x[:2]))


@pytest.mark.parametrize("shape", [(2, 3, 28, 28), (2, 1, 32, 32), (3, 32, 32)])
def test_discriminator_rejects_bad_input_shape(shape):
    d = ResNetDiscriminator(image_size=32, channels=3, features=F)
    with pytest.raises(ValueError, match="x must have shape"):
        d(torch.randn(*shape))


def test_discriminator_labels_validation():
    cond = ResNetDiscriminator(image_size=28, channels=1, features=F, num_classes=3)
    uncond = ResNetDiscriminator(image_size=28, channels=1, features=F)
    x = torch.randn(2, 1, 28, 28)
    with pytest.raises(ValueError, match="class-conditional"):
        cond(x)
    with pytest.raises(ValueError, match="unconditional"):
        uncond(x, _labels(0, 1))
    with pytest.raises(TypeError, match="integer"):
        cond(x, torch.tensor([0.0, 1.0]))


def test_discriminator_labels_change_output():
    torch.manual_seed(0)
    d = ResNetDiscriminator(image_size=32, features=F, num_classes=3).eval()
    x = torch.randn(2, 3, 32, 32)
    a, b = d(x, _labels(0, 0)), d(x, _labels(1, 2))
    assert not torch.allclose(a, b)
    torch.testing.assert_close(a, d(x, _labels(0, 0)))


@pytest.mark.parametrize("num_classes", [None, 4])
def test_discriminator_spectral_norm(num_classes):
    torch.manual_seed(0)
    d = ResNetDiscriminator(image_size=32, features=F, num_classes=num_classes)
    labels = None if num_classes is None else _labels(0, 3)
    x = torch.randn(2, 3, 32, 32)
    # Each training-mode forward runs one power iteration; with only 8 singular
    # values per layer the top two can be close, so convergence takes a while.
    with torch.no_grad():
        for _ in range(20):
            d(x, labels)
    layers = _parametrized(d)
    names = {n for n, _ in layers}
    expected = {m for m in d.modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding))}
    assert {m for _, m in layers} == expected
    assert ("projection.embedding" in names) == (num_classes is not None)
    with torch.no_grad():
        for name, m in layers:
            sigma = torch.linalg.matrix_norm(m.weight.flatten(1), ord=2)
            assert abs(float(sigma) - 1) < 0.05, f"{name}: spectral norm {float(sigma):.3f}"


def test_discriminator_without_spectral_norm():
    d = ResNetDiscriminator(image_size=32, features=F, spectral_norm=False, num_classes=3)
    assert _parametrized(d) == []


@pytest.mark.parametrize("num_classes", [None, 3])
def test_discriminator_double_backward(num_classes):
    # The WGAN-GP penalty differentiates the gradient norm w.r.t. the input.
    torch.manual_seed(0)
    d = ResNetDiscriminator(image_size=28, channels=1, features=F, num_classes=num_classes)
    labels = None if num_classes is None else _labels(0, 2)
    x = torch.randn(2, 1, 28, 28, requires_grad=True)
    (grad,) = torch.autograd.grad(d(x, labels).sum(), x, create_graph=True)
    penalty = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
    penalty.backward()
    for name, p in d.named_parameters():
        if name.endswith("bias") and "linear" in name:
            continue  # the logit's bias does not affect the input gradient
        assert p.grad is not None, f"no penalty gradient for {name}"
        assert torch.isfinite(p.grad).all(), name


# --------------------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        ({"image_size": 16}, ValueError, r"image_size must be one of \(28, 32, 48, 64, 128\), got 16"),
        ({"image_size": "32"}, TypeError, "image_size"),
        ({"features": 0}, ValueError, "features"),
        ({"channels": 1.0}, TypeError, "channels"),
        ({"latent_dim": -1}, ValueError, "latent_dim"),
        ({"num_classes": 1}, ValueError, "num_classes"),
        ({"num_classes": 2.0}, TypeError, "num_classes"),
    ],
)
def test_generator_bad_arguments(kwargs, error, name):
    with pytest.raises(error, match=name):
        ResNetGenerator(**{"features": F, **kwargs})


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        ({"image_size": 256}, ValueError, r"image_size must be one of \(28, 32, 48, 64, 128\), got 256"),
        ({"features": 0}, ValueError, "features"),
        ({"channels": True}, TypeError, "channels"),
        ({"spectral_norm": "yes"}, TypeError, "spectral_norm"),
        ({"num_classes": 1}, ValueError, "num_classes"),
    ],
)
def test_discriminator_bad_arguments(kwargs, error, name):
    with pytest.raises(error, match=name):
        ResNetDiscriminator(**{"features": F, **kwargs})


# --------------------------------------------------------------------------- training


@pytest.mark.parametrize("num_classes", [None, 3])
def test_one_adam_step_updates_every_parameter(num_classes):
    torch.manual_seed(0)
    g = ResNetGenerator(latent_dim=Z, image_size=28, channels=1, features=F, num_classes=num_classes)
    d = ResNetDiscriminator(image_size=28, channels=1, features=F, num_classes=num_classes)
    # Every class appears, so every embedding row is used.
    labels = None if num_classes is None else _labels(0, 1, 2, 0)
    opt_g = torch.optim.Adam(g.parameters(), lr=1e-3)
    opt_d = torch.optim.Adam(d.parameters(), lr=1e-3)
    before_g = {n: p.detach().clone() for n, p in g.named_parameters()}
    before_d = {n: p.detach().clone() for n, p in d.named_parameters()}

    fake = g(torch.randn(4, Z), labels)
    nn.functional.softplus(-d(fake, labels)).mean().backward()  # non-saturating G loss
    for name, p in g.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient for G.{name}"
    opt_g.step()

    opt_d.zero_grad()
    real = torch.rand(4, 1, 28, 28) * 2 - 1
    sp = nn.functional.softplus
    loss_d = sp(-d(real, labels)).mean() + sp(d(fake.detach(), labels)).mean()
    loss_d.backward()
    for name, p in d.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient for D.{name}"
    opt_d.step()

    for name, p in g.named_parameters():
        assert not torch.equal(p, before_g[name]), f"G.{name} unchanged"
    for name, p in d.named_parameters():
        assert not torch.equal(p, before_d[name]), f"D.{name} unchanged"


def test_default_sizes_match_paper():
    # SNGAN's CIFAR-10 ResNets: about 4.3M (G) and 1.0M (D) parameters.
    g = ResNetGenerator()
    d = ResNetDiscriminator(spectral_norm=False)
    n_g = sum(p.numel() for p in g.parameters())
    n_d = sum(p.numel() for p in d.parameters())
    assert 4.2e6 < n_g < 4.35e6
    assert 1.0e6 < n_d < 1.1e6
    assert g.latent_dim == 128 and g.image_shape == (3, 32, 32)
    assert [b.conv1.out_channels for b in g.blocks] == [256] * 3
    assert [b.conv1.out_channels for b in d.blocks] == [128] * 4


# --------------------------------------------------------------------------- STL-10 (48) and ImageNet (128) nets


@pytest.mark.parametrize("size", [48, 128])
@pytest.mark.parametrize("num_classes", [None, 3])
def test_paper_sizes_shapes(size, num_classes):
    g = ResNetGenerator(latent_dim=4, image_size=size, features=4, num_classes=num_classes)
    d = ResNetDiscriminator(image_size=size, features=2, num_classes=num_classes)
    labels = None if num_classes is None else _labels(0, 2)
    x = g(torch.randn(2, 4), labels)
    assert x.shape == (2, 3, size, size)
    assert x.abs().max() <= 1
    assert d(x, labels).shape == (2,)


def test_paper_widths_with_default_features():
    # mimicry's sngan_48.py / sngan_128.py (ngf=512 / 1024, ndf=1024), from the paper's appendix.
    assert _generator_plan(48, 256) == (6, 512, [256, 128, 64])
    assert _generator_plan(128, 256) == (4, 1024, [1024, 512, 256, 128, 64])
    assert _discriminator_plan(48, 128) == [(64, True), (128, True), (256, True), (512, True), (1024, False)]
    assert _discriminator_plan(128, 128) == [
        (64, True), (128, True), (256, True), (512, True), (1024, True), (1024, False)
    ]  # fmt: skip


def test_paper_sizes_blocks_follow_the_plan():
    g = ResNetGenerator(latent_dim=4, image_size=128, features=4)
    assert g.linear.out_features == 16 * 4 * 4
    assert [(b.conv1.in_channels, b.conv1.out_channels) for b in g.blocks] == [
        (16, 16), (16, 8), (8, 4), (4, 2), (2, 1)
    ]  # fmt: skip
    assert g.output_norm.num_features == 1 and g.output_conv.in_channels == 1
    d = ResNetDiscriminator(image_size=48, features=2, spectral_norm=False)
    # As in mimicry's DBlock, the first conv keeps the input width; the optimized block maps straight to it.
    assert [(b.conv1.in_channels, b.conv1.out_channels, b.conv2.out_channels) for b in d.blocks] == [
        (3, 1, 1), (1, 1, 2), (2, 2, 4), (4, 4, 8), (8, 8, 16)
    ]  # fmt: skip
    assert [b.downsample for b in d.blocks] == [True] * 4 + [False]
    # The last block widens, so it has a learned (1x1) shortcut even without downsampling.
    assert d.blocks[-1].shortcut is not None
    assert d.blocks(torch.randn(1, 3, 48, 48)).shape == (1, 16, 3, 3)
    assert d.linear.in_features == 16


@pytest.mark.parametrize(
    "net, size, features, divisor",
    [(ResNetGenerator, 48, 6, 4), (ResNetGenerator, 128, 2, 4), (ResNetDiscriminator, 48, 3, 2)],
)
def test_paper_sizes_need_divisible_features(net, size, features, divisor):
    with pytest.raises(ValueError, match=rf"features must be a multiple of {divisor} at image_size {size}.*{features}"):
        net(image_size=size, features=features)


# The nets of the original sizes must stay exactly what they were (checkpoints depend on it).
def _listing(net: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, tuple(v.shape)) for k, v in net.state_dict().items()]


def _bn(prefix: str, n: int) -> list[tuple[str, tuple[int, ...]]]:
    stats = ["weight", "bias", "running_mean", "running_var"]
    return [(f"{prefix}.{k}", (n,)) for k in stats] + [(f"{prefix}.num_batches_tracked", ())]


def _sn_conv(name: str, c_out: int, c_in: int, k: int) -> list[tuple[str, tuple[int, ...]]]:
    sn = f"{name}.parametrizations.weight"
    return [
        (f"{name}.bias", (c_out,)),
        (f"{sn}.original", (c_out, c_in, k, k)),
        (f"{sn}.0._u", (c_out,)),
        (f"{sn}.0._v", (c_in * k * k,)),
    ]


def test_size_28_state_dicts_unchanged():
    g_blocks = []
    for i in range(2):
        p = f"blocks.{i}"
        g_blocks += _bn(f"{p}.norm1", 2) + [(f"{p}.conv1.weight", (2, 2, 3, 3))] + _bn(f"{p}.norm2", 2)
        g_blocks += [(f"{p}.conv2.weight", (2, 2, 3, 3)), (f"{p}.shortcut.weight", (2, 2, 1, 1))]
    expected_g = [("linear.weight", (98, 8)), ("linear.bias", (98,)), *g_blocks, *_bn("output_norm", 2)]
    expected_g += [("output_conv.weight", (1, 2, 3, 3)), ("output_conv.bias", (1,))]
    assert _listing(ResNetGenerator(latent_dim=8, image_size=28, channels=1, features=2)) == expected_g

    expected_d = _sn_conv("blocks.0.conv1", 2, 1, 3) + _sn_conv("blocks.0.conv2", 2, 2, 3)
    expected_d += _sn_conv("blocks.0.shortcut", 2, 1, 1)
    expected_d += _sn_conv("blocks.1.conv1", 2, 2, 3) + _sn_conv("blocks.1.conv2", 2, 2, 3)
    expected_d += _sn_conv("blocks.1.shortcut", 2, 2, 1)
    for i in (2, 3):
        expected_d += _sn_conv(f"blocks.{i}.conv1", 2, 2, 3) + _sn_conv(f"blocks.{i}.conv2", 2, 2, 3)
    sn = "linear.parametrizations.weight"
    expected_d += [("linear.bias", (1,)), (f"{sn}.original", (1, 2)), (f"{sn}.0._u", (1,)), (f"{sn}.0._v", (2,))]
    assert _listing(ResNetDiscriminator(image_size=28, channels=1, features=2)) == expected_d


@pytest.mark.parametrize("size, blocks, down", [(28, 2, 2), (32, 3, 2), (64, 4, 3)])
def test_original_sizes_parameter_counts_unchanged(size, blocks, down):
    # The constant-width formula of the CIFAR-10 nets, before the 48/128 schedules were added.
    f, z, c = F, Z, 3
    base = 7 if size == 28 else 4
    g_expected = (z + 1) * f * base**2 + blocks * (19 * f * f + 4 * f) + 2 * f + 9 * f * c + c
    d_expected = (9 * c * f + f) + (9 * f * f + f) + (c * f + f)  # optimized block
    d_expected += (down - 1) * (2 * (9 * f * f + f) + f * f + f)  # down-blocks with 1x1 shortcuts
    d_expected += 2 * 2 * (9 * f * f + f) + f + 1  # two identity-shortcut blocks, the logit
    g = ResNetGenerator(latent_dim=z, image_size=size, channels=c, features=f)
    d = ResNetDiscriminator(image_size=size, channels=c, features=f, spectral_norm=False)
    assert sum(p.numel() for p in g.parameters()) == g_expected
    assert sum(p.numel() for p in d.parameters()) == d_expected

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from lightning_gan.nets.conditioning import ConditionalBatchNorm2d
from lightning_gan.nets.resnet import ResNetDiscriminator, ResNetGenerator

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
        ({"image_size": 48}, ValueError, "image_size"),
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
        ({"image_size": 48}, ValueError, "image_size"),
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

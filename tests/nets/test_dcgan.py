import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from lightning_gan.nets import DCGANDiscriminator, DCGANGenerator, dcgan_init_

SIZES = [28, 32, 64]
# Small widths keep every test well under a second on CPU.
F = 4


def _assert_all_grads_finite(module: nn.Module) -> None:
    for name, p in module.named_parameters():
        assert p.grad is not None, f"no gradient for {name}"
        assert torch.isfinite(p.grad).all(), f"non-finite gradient for {name}"


def _convs(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]


# --------------------------------------------------------------------------- generator


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("channels", [1, 3])
def test_generator_output_shape(size, channels):
    g = DCGANGenerator(latent_dim=10, image_size=size, channels=channels, features=F)
    out = g(torch.randn(2, 10))
    assert out.shape == (2, channels, size, size)
    assert g.image_shape == (channels, size, size)
    assert g.latent_dim == 10
    assert out.abs().max() <= 1  # tanh output


def test_generator_accepts_4d_latent():
    torch.manual_seed(0)
    g = DCGANGenerator(latent_dim=10, image_size=32, channels=3, features=F).eval()
    z = torch.randn(2, 10)
    torch.testing.assert_close(g(z), g(z[:, :, None, None]))


@pytest.mark.parametrize("shape", [(2, 11), (2, 10, 2, 2), (10,)])
def test_generator_rejects_bad_latent_shape(shape):
    g = DCGANGenerator(latent_dim=10, image_size=28, channels=1, features=F)
    with pytest.raises(ValueError, match="z must have shape"):
        g(torch.randn(*shape))


@pytest.mark.parametrize(
    "size, widths, first_kernel",
    [(64, [32, 16, 8, 4, 3], 4), (32, [16, 8, 4, 3], 4), (28, [8, 4, 3], 7)],
)
def test_generator_architecture(size, widths, first_kernel):
    g = DCGANGenerator(latent_dim=10, image_size=size, channels=3, features=F)
    convs = [m for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [m.out_channels for m in convs] == widths
    assert convs[0].kernel_size == (first_kernel, first_kernel)
    assert convs[0].stride == (1, 1) and convs[0].padding == (0, 0)
    for m in convs[1:]:
        assert m.kernel_size == (4, 4) and m.stride == (2, 2) and m.padding == (1, 1)
    # Convs followed by batch norm carry no bias; the output conv does.
    assert all(m.bias is None for m in convs[:-1])
    assert convs[-1].bias is not None
    assert sum(isinstance(m, nn.BatchNorm2d) for m in g.modules()) == len(convs) - 1
    assert isinstance(list(g.modules())[-1], nn.Tanh)


@pytest.mark.parametrize("size", SIZES)
def test_generator_gradients_flow(size):
    g = DCGANGenerator(latent_dim=8, image_size=size, channels=3, features=F)
    g(torch.randn(2, 8)).sum().backward()
    _assert_all_grads_finite(g)


def test_generator_default_is_paper_architecture():
    g = DCGANGenerator()
    convs = [m for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(m.in_channels, m.out_channels) for m in convs] == [
        (100, 512),
        (512, 256),
        (256, 128),
        (128, 64),
        (64, 3),
    ]
    assert g.image_shape == (3, 64, 64)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"image_size": 48}, r"image_size must be 28 or a power of two >= 16.*got 48"),
        ({"image_size": 8}, r"image_size must be 28 or a power of two >= 16.*got 8"),
        ({"image_size": 0}, r"image_size.*0"),
        ({"latent_dim": 0}, "latent_dim.*0"),
        ({"channels": -1}, "channels.*-1"),
        ({"features": 0}, "features.*0"),
    ],
)
def test_generator_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DCGANGenerator(**kwargs)


@pytest.mark.parametrize("kwargs", [{"image_size": 64.0}, {"channels": "3"}, {"latent_dim": None}])
def test_generator_bad_types(kwargs):
    with pytest.raises(TypeError, match=next(iter(kwargs))):
        DCGANGenerator(**kwargs)


# --------------------------------------------------------------------------- discriminator


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("normalization", ["batch", "layer", "none"])
def test_discriminator_logit_shape(size, channels, normalization):
    d = DCGANDiscriminator(size, channels, features=F, normalization=normalization)
    assert d(torch.randn(3, channels, size, size)).shape == (3,)
    assert d.image_shape == (channels, size, size)


@pytest.mark.parametrize(
    "size, widths, last_kernel",
    [(64, [4, 8, 16, 32, 1], 4), (32, [4, 8, 16, 1], 4), (28, [4, 8, 1], 7)],
)
def test_discriminator_architecture(size, widths, last_kernel):
    d = DCGANDiscriminator(size, 3, features=F)
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert [m.out_channels for m in convs] == widths
    for m in convs[:-1]:
        assert m.kernel_size == (4, 4) and m.stride == (2, 2) and m.padding == (1, 1)
    assert convs[-1].kernel_size == (last_kernel, last_kernel)
    assert convs[-1].stride == (1, 1) and convs[-1].padding == (0, 0)
    # No normalization after the first conv: one BN per inner conv.
    assert sum(isinstance(m, nn.BatchNorm2d) for m in d.modules()) == len(convs) - 2
    assert isinstance(d.net[1], nn.LeakyReLU) and d.net[1].negative_slope == 0.2


def test_discriminator_default_is_paper_architecture():
    d = DCGANDiscriminator()
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert [(m.in_channels, m.out_channels) for m in convs] == [
        (3, 64),
        (64, 128),
        (128, 256),
        (256, 512),
        (512, 1),
    ]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("normalization", ["batch", "layer", "none"])
def test_discriminator_gradients_flow(size, normalization):
    d = DCGANDiscriminator(size, 3, features=F, normalization=normalization)
    d(torch.randn(3, 3, size, size)).sum().backward()
    _assert_all_grads_finite(d)


@pytest.mark.parametrize("normalization", ["layer", "none"])
@pytest.mark.parametrize("size", SIZES)
def test_critic_scores_samples_independently(normalization, size):
    torch.manual_seed(0)
    d = DCGANDiscriminator(size, 1, features=F, normalization=normalization).train()
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in d.modules())
    x = torch.randn(4, 1, size, size)
    torch.testing.assert_close(d(x)[0], d(x[:1])[0])


def test_layer_normalization_is_groupnorm_over_chw():
    d = DCGANDiscriminator(32, 3, features=F, normalization="layer")
    norms = [m for m in d.modules() if isinstance(m, nn.GroupNorm)]
    assert len(norms) == 2 and all(m.num_groups == 1 for m in norms)


def test_batch_normalization_couples_samples():
    # Sanity check that the independence test above can fail.
    torch.manual_seed(0)
    d = DCGANDiscriminator(32, 1, features=F, normalization="batch").train()
    x = torch.randn(4, 1, 32, 32)
    assert not torch.allclose(d(x)[0], d(x[:2])[0])


def test_discriminator_bias_only_where_not_normalized():
    for normalization, inner_bias in [("batch", False), ("layer", False), ("none", True)]:
        d = DCGANDiscriminator(64, 3, features=F, normalization=normalization)
        convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
        assert convs[0].bias is not None and convs[-1].bias is not None
        assert all((m.bias is not None) == inner_bias for m in convs[1:-1])


@pytest.mark.parametrize("normalization", ["batch", "layer", "none"])
def test_discriminator_spectral_norm(normalization):
    d = DCGANDiscriminator(28, 1, features=F, normalization=normalization, spectral_norm=True)
    convs = _convs(d)
    assert len(convs) == 3
    assert all(parametrize.is_parametrized(m, "weight") for m in convs)
    d(torch.randn(2, 1, 28, 28)).sum().backward()
    _assert_all_grads_finite(d)
    plain = DCGANDiscriminator(28, 1, features=F, normalization=normalization)
    assert not any(parametrize.is_parametrized(m) for m in plain.modules())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"image_size": 100}, r"image_size must be 28 or a power of two >= 16.*got 100"),
        ({"image_size": 8}, r"image_size.*8"),
        ({"channels": 0}, "channels.*0"),
        ({"features": -2}, "features.*-2"),
        ({"normalization": "instance"}, "normalization.*batch.*instance"),
    ],
)
def test_discriminator_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DCGANDiscriminator(**kwargs)


@pytest.mark.parametrize("kwargs", [{"image_size": "64"}, {"features": 1.5}, {"spectral_norm": "yes"}])
def test_discriminator_bad_types(kwargs):
    with pytest.raises(TypeError, match=next(iter(kwargs))):
        DCGANDiscriminator(**kwargs)


def test_discriminator_rejects_wrong_input_shape():
    d = DCGANDiscriminator(32, 3, features=F)
    with pytest.raises(ValueError, match=r"x.*\(2, 1, 32, 32\)"):
        d(torch.randn(2, 1, 32, 32))


# --------------------------------------------------------------------------- init


def test_dcgan_init_statistics():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(16, 64, 4),
        nn.ConvTranspose2d(64, 64, 4),
        nn.Linear(256, 256),
        nn.BatchNorm2d(4096),
        nn.GroupNorm(1, 4096),
        nn.ReLU(),
    )
    dcgan_init_(net)
    for m in net[:3]:
        assert abs(m.weight.mean().item()) < 0.002
        assert abs(m.weight.std().item() - 0.02) < 0.002
        assert torch.all(m.bias == 0)
    for m in net[3:5]:
        assert abs(m.weight.mean().item() - 1) < 0.002
        assert abs(m.weight.std().item() - 0.02) < 0.002
        assert torch.all(m.bias == 0)


def test_dcgan_classes_are_initialised():
    torch.manual_seed(0)
    g = DCGANGenerator(latent_dim=100, image_size=32, channels=3, features=16)
    d = DCGANDiscriminator(32, 3, features=16)
    for net in (g, d):
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                assert abs(m.weight.std().item() - 0.02) < 0.004
            if isinstance(m, nn.BatchNorm2d):
                assert abs(m.weight.mean().item() - 1) < 0.02


def test_dcgan_init_on_spectral_norm_layer():
    layer = nn.utils.parametrizations.spectral_norm(nn.Linear(64, 64))
    dcgan_init_(layer)
    original = layer.parametrizations.weight.original
    assert abs(original.std().item() - 0.02) < 0.004
    assert torch.all(layer.bias == 0)


def test_dcgan_init_rejects_non_module():
    with pytest.raises(TypeError, match="module"):
        dcgan_init_(torch.zeros(3))


# --------------------------------------------------------------------------- other sizes


@pytest.mark.parametrize("size", [16, 32, 64, 128, 256])
def test_power_of_two_sizes_shapes(size):
    g = DCGANGenerator(latent_dim=4, image_size=size, channels=3, features=2)
    d = DCGANDiscriminator(size, 3, features=2)
    x = g(torch.randn(2, 4))
    assert x.shape == (2, 3, size, size)
    assert d(x).shape == (2,)
    # k = log2(size / 4) stride-2 stages: one conv per stage plus the base (G) or logit (D) conv.
    stages = {16: 2, 32: 3, 64: 4, 128: 5, 256: 6}[size]
    g_convs = [m for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]
    d_convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert [m.out_channels for m in g_convs] == [2 * 2 ** (stages - 1 - i) for i in range(stages)] + [3]
    assert [m.out_channels for m in d_convs] == [2 * 2**i for i in range(stages)] + [1]
    assert g_convs[0].kernel_size == (4, 4) and d_convs[-1].kernel_size == (4, 4)


@pytest.mark.parametrize("size", [8, 12, 24, 48, 96, 100, 27, 1, -16])
def test_unsupported_sizes_refused(size):
    for build in (lambda: DCGANGenerator(image_size=size), lambda: DCGANDiscriminator(image_size=size)):
        with pytest.raises(ValueError, match=rf"image_size must be 28 or a power of two >= 16 .*got {size}"):
            build()


# The nets of the original sizes must stay exactly what they were (checkpoints depend on it).
OLD_G28 = [
    ("net.0.weight", (8, 4, 7, 7)),
    ("net.1.weight", (4,)), ("net.1.bias", (4,)), ("net.1.running_mean", (4,)), ("net.1.running_var", (4,)),
    ("net.1.num_batches_tracked", ()),
    ("net.3.weight", (4, 2, 4, 4)),
    ("net.4.weight", (2,)), ("net.4.bias", (2,)), ("net.4.running_mean", (2,)), ("net.4.running_var", (2,)),
    ("net.4.num_batches_tracked", ()),
    ("net.6.weight", (2, 1, 4, 4)), ("net.6.bias", (1,)),
]  # fmt: skip
OLD_D28 = [
    ("net.0.weight", (2, 1, 4, 4)), ("net.0.bias", (2,)),
    ("net.2.weight", (4, 2, 4, 4)),
    ("net.3.weight", (4,)), ("net.3.bias", (4,)), ("net.3.running_mean", (4,)), ("net.3.running_var", (4,)),
    ("net.3.num_batches_tracked", ()),
    ("net.5.weight", (1, 4, 7, 7)), ("net.5.bias", (1,)),
]  # fmt: skip


def _listing(net: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, tuple(v.shape)) for k, v in net.state_dict().items()]


def test_size_28_state_dict_unchanged():
    assert _listing(DCGANGenerator(latent_dim=8, image_size=28, channels=1, features=2)) == OLD_G28
    assert _listing(DCGANDiscriminator(28, 1, features=2)) == OLD_D28


def _old_generator_params(latent: int, size: int, channels: int, f: int) -> int:
    base = 7 if size == 28 else 4
    k = {28: 2, 32: 3, 64: 4}[size]
    widths = [f * 2 ** (k - 1 - i) for i in range(k)]
    total = latent * widths[0] * base * base  # bias-free first deconv
    total += sum(a * b * 16 for a, b in zip(widths[:-1], widths[1:]))  # bias-free deconvs
    total += sum(2 * w for w in widths)  # batch norm scale and shift
    return total + widths[-1] * channels * 16 + channels  # output deconv with bias


def _old_discriminator_params(size: int, channels: int, f: int, normalization: str) -> int:
    base = 7 if size == 28 else 4
    k = {28: 2, 32: 3, 64: 4}[size]
    widths = [f * 2**i for i in range(k)]
    total = channels * widths[0] * 16 + widths[0]
    for a, b in zip(widths[:-1], widths[1:]):
        total += a * b * 16 + (b if normalization == "none" else 2 * b)  # conv bias or norm affine
    return total + widths[-1] * base * base + 1


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("normalization", ["batch", "layer", "none"])
def test_original_sizes_parameter_counts_unchanged(size, normalization):
    g = DCGANGenerator(latent_dim=8, image_size=size, channels=3, features=F)
    d = DCGANDiscriminator(size, 3, features=F, normalization=normalization)
    assert sum(p.numel() for p in g.parameters()) == _old_generator_params(8, size, 3, F)
    assert sum(p.numel() for p in d.parameters()) == _old_discriminator_params(size, 3, F, normalization)
    assert len(g.net) == 3 * {28: 2, 32: 3, 64: 4}[size] + 2

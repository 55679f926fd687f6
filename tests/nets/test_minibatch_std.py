import numpy as np
import pytest
import torch
from torch import nn

from lightning_gan.nets import (
    DCGANDiscriminator,
    MinibatchStdDev,
    MLPDiscriminator,
    ResNetDiscriminator,
)


def _progan_reference(x: np.ndarray, group_size: int) -> np.ndarray:
    """``minibatch_stddev_layer`` of tkarras/progressive_growing_of_gans (networks.py), line for line in NumPy."""
    four_d = x.ndim == 4
    if not four_d:
        x = x[:, :, None, None]
    group_size = min(group_size, x.shape[0])
    s = x.shape
    y = np.reshape(x, [group_size, -1, s[1], s[2], s[3]])  # [GMCHW]
    y = y - np.mean(y, axis=0, keepdims=True)
    y = np.mean(np.square(y), axis=0)  # [MCHW]
    y = np.sqrt(y + 1e-8)
    y = np.mean(y, axis=(1, 2, 3), keepdims=True)  # [M111]
    y = np.tile(y, [group_size, 1, s[2], s[3]])  # [N1HW]
    out = np.concatenate([x, y], axis=1)
    return out if four_d else out[:, :, 0, 0]


@pytest.mark.parametrize(
    "shape, group_size",
    [((8, 3, 4, 5), 4), ((8, 3, 4, 5), 2), ((2, 3, 4, 4), 4), ((12, 5), 4), ((3, 6), 4), ((1, 2, 2, 2), 4)],
)
def test_matches_progan_reference(shape, group_size):
    x = torch.randn(*shape, dtype=torch.float64) * torch.linspace(0.5, 2.0, shape[0], dtype=torch.float64).view(
        -1, *[1] * (len(shape) - 1)
    )
    out = MinibatchStdDev(group_size)(x)
    expected = _progan_reference(x.numpy(), group_size)
    assert out.shape == expected.shape == (shape[0], shape[1] + 1, *shape[2:])
    np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=1e-6)
    # float32 too (the statistic is computed in at least float32)
    out32 = MinibatchStdDev(group_size)(x.float())
    assert out32.dtype == torch.float32
    np.testing.assert_allclose(out32.numpy(), expected, rtol=0, atol=1e-6)


def test_groups_are_strided_as_in_the_reference():
    # N = 4, G = 2: groups {0, 2} and {1, 3}.
    x = torch.tensor([[0.0], [10.0], [2.0], [10.0]])
    out = MinibatchStdDev(2)(x)
    torch.testing.assert_close(out[:, 0], x[:, 0])
    stat = out[:, 1]
    torch.testing.assert_close(stat, torch.tensor([1.0, 1e-4, 1.0, 1e-4]))


def test_statistic_is_constant_plane_and_input_is_kept():
    x = torch.randn(4, 3, 5, 5)
    out = MinibatchStdDev(4)(x)
    assert torch.equal(out[:, :3], x)
    assert torch.all(out[:, 3] == out[0, 3, 0, 0])


def test_gradient_is_finite_for_identical_samples():
    x = torch.ones(4, 2, 3, 3, requires_grad=True)
    MinibatchStdDev(4)(x).sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("n, group", [(6, 4), (5, 2), (9, 4)])
def test_batch_not_divisible_by_group(n, group):
    with pytest.raises(ValueError, match=rf"group_size={group}.*multiple of {group}.*batch of {n}"):
        MinibatchStdDev(group)(torch.randn(n, 3))


def test_rejects_bad_input_rank():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\) or \(N, F\).*\(4, 3, 2\)"):
        MinibatchStdDev(2)(torch.randn(4, 3, 2))


@pytest.mark.parametrize(
    "value, error, match",
    [(1, ValueError, "group_size.*>= 2.*1"), (0, ValueError, "group_size.*0"), (2.0, TypeError, "group_size.*2.0"),
     (True, TypeError, "group_size.*True")],
)  # fmt: skip
def test_bad_group_size(value, error, match):
    with pytest.raises(error, match=match):
        MinibatchStdDev(value)


# --------------------------------------------------------------------------- in the discriminators


def _mbstd_then(net: nn.Sequential) -> tuple[nn.Module, nn.Module]:
    return net[-2], net[-1]


@pytest.mark.parametrize("size", [28, 32])
@pytest.mark.parametrize("num_classes", [None, 3])
def test_dcgan_discriminator(size, num_classes):
    d = DCGANDiscriminator(size, 1, features=2, num_classes=num_classes, minibatch_std_group=2)
    assert d.minibatch_std_group == 2
    layer, final = _mbstd_then(d.net)
    assert isinstance(layer, MinibatchStdDev) and layer.group_size == 2
    plain = DCGANDiscriminator(size, 1, features=2)
    assert final.in_channels == plain.net[-1].in_channels + 1
    if num_classes is not None:  # the projection reads what the final conv reads
        base = 7 if size == 28 else 4
        assert d.projection.embedding.embedding_dim == final.in_channels * base * base
    labels = None if num_classes is None else torch.tensor([0, 1, 2, 0])
    assert d(torch.randn(4, 1, size, size), labels).shape == (4,)


@pytest.mark.parametrize("size, features", [(28, 2), (48, 2)])
def test_resnet_discriminator(size, features):
    d = ResNetDiscriminator(image_size=size, features=features, minibatch_std_group=4, num_classes=3)
    plain = ResNetDiscriminator(image_size=size, features=features, spectral_norm=False)
    assert isinstance(d.minibatch_std, MinibatchStdDev)
    last, plain_last = d.blocks[-1], plain.blocks[-1]
    # One more input channel for the last block (first conv and a now learned shortcut), nothing else changes.
    assert last.conv1.in_channels == plain_last.conv1.in_channels + 1
    assert last.conv1.out_channels == plain_last.conv1.out_channels
    assert last.shortcut is not None and last.shortcut.in_channels == plain_last.conv1.in_channels + 1
    seen = []
    last.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[1]))
    assert d(torch.randn(8, 3, size, size), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])).shape == (8,)
    assert seen == [plain_last.conv1.in_channels + 1]


@pytest.mark.parametrize("num_classes, conditioning", [(None, "projection"), (3, "projection"), (3, "concat")])
@pytest.mark.parametrize("hidden", [(8,), ()])
def test_mlp_discriminator(num_classes, conditioning, hidden):
    d = MLPDiscriminator((2,), hidden, num_classes=num_classes, conditioning=conditioning, minibatch_std_group=2)
    plain = MLPDiscriminator((2,), hidden, num_classes=num_classes, conditioning=conditioning)
    layer, final = _mbstd_then(d.net)
    assert isinstance(layer, MinibatchStdDev)
    assert final.in_features == plain.net[-1].in_features + 1
    if d.projection is not None:
        assert d.projection.embedding.embedding_dim == final.in_features
    labels = None if num_classes is None else torch.tensor([0, 1, 2, 0])
    assert d(torch.randn(4, 2), labels).shape == (4,)


@pytest.mark.parametrize(
    "build",
    [
        lambda g: DCGANDiscriminator(16, 1, features=2, normalization="none", minibatch_std_group=g),
        lambda g: ResNetDiscriminator(image_size=28, channels=1, features=2, minibatch_std_group=g),
        lambda g: MLPDiscriminator((1, 4, 4), (8,), dropout=0.0, minibatch_std_group=g),
    ],
)
def test_option_couples_samples_and_validates(build):
    torch.manual_seed(0)
    d = build(2).eval()  # even in eval mode: the statistic is not a running average
    shape = (4, *d.image_shape) if hasattr(d, "image_shape") else (4, *d.input_shape)
    x = torch.randn(*shape)
    other = x.clone()
    other[2] = torch.randn(*shape[1:])  # sample 2 shares sample 0's group
    assert not torch.allclose(d(x)[0], d(other)[0])
    torch.testing.assert_close(d(x)[1], d(other)[1])  # another group: unaffected
    with pytest.raises(ValueError, match="multiple of 2.*batch of 3"):
        d(x[:3])
    with pytest.raises(ValueError, match="minibatch_std_group.*>= 2.*1"):
        build(1)
    with pytest.raises(TypeError, match="minibatch_std_group.*'4'"):
        build("4")
    assert build(None).minibatch_std_group is None

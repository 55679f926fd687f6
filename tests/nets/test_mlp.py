import math

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from lightning_gan.nets import MLPDiscriminator, MLPGenerator


def _assert_all_grads_finite(module: nn.Module) -> None:
    for name, p in module.named_parameters():
        assert p.grad is not None, f"no gradient for {name}"
        assert torch.isfinite(p.grad).all(), f"non-finite gradient for {name}"


# --------------------------------------------------------------------------- generator


@pytest.mark.parametrize("output_shape", [(1, 28, 28), (3, 8, 8), (2,), (5,)])
def test_generator_output_shape(output_shape):
    g = MLPGenerator(latent_dim=6, output_shape=output_shape, hidden_dims=(16, 16))
    out = g(torch.randn(4, 6))
    assert out.shape == (4, *output_shape)
    assert g.output_shape == tuple(output_shape)
    assert isinstance(g.output_shape, tuple)
    assert g.latent_dim == 6


def test_generator_default_sizes_match_paper():
    g = MLPGenerator(latent_dim=100, output_shape=[1, 28, 28])
    linears = [m for m in g.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (100, 1200),
        (1200, 1200),
        (1200, 784),
    ]
    assert isinstance(g.output_shape, tuple)


def test_generator_tanh_range():
    torch.manual_seed(0)
    g = MLPGenerator(latent_dim=4, output_shape=(10,), hidden_dims=(8,))
    # Large inputs push tanh into saturation; the output must still stay in range.
    out = g(100 * torch.randn(64, 4))
    assert out.min() >= -1 and out.max() <= 1


def test_generator_sigmoid_and_identity():
    torch.manual_seed(0)
    z = 100 * torch.randn(64, 4)
    sig = MLPGenerator(4, (10,), hidden_dims=(8,), output_activation="sigmoid")(z)
    assert sig.min() >= 0 and sig.max() <= 1
    ident = MLPGenerator(4, (10,), hidden_dims=(8,), output_activation="identity")(z)
    assert ident.abs().max() > 1  # unbounded


def test_generator_empty_hidden_dims():
    g = MLPGenerator(3, (2,), hidden_dims=())
    assert g(torch.randn(5, 3)).shape == (5, 2)


def test_generator_gradients_flow():
    g = MLPGenerator(5, (1, 4, 4), hidden_dims=(8, 8))
    g(torch.randn(3, 5)).sum().backward()
    _assert_all_grads_finite(g)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"latent_dim": 0}, "latent_dim.*0"),
        ({"latent_dim": -3}, "latent_dim.*-3"),
        ({"output_shape": ()}, r"output_shape.*\(\)"),
        ({"output_shape": (1, 0)}, r"output_shape.*\(1, 0\)"),
        ({"hidden_dims": (8, -1)}, r"hidden_dims.*\(8, -1\)"),
        ({"output_activation": "relu"}, "output_activation.*tanh.*relu"),
    ],
)
def test_generator_bad_arguments(kwargs, match):
    args = {"latent_dim": 4, "output_shape": (2,), "hidden_dims": (8,)}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        MLPGenerator(**args)


@pytest.mark.parametrize(
    "kwargs",
    [{"latent_dim": 2.0}, {"latent_dim": True}, {"output_shape": 5}, {"hidden_dims": (8.0,)}],
)
def test_generator_bad_types(kwargs):
    args = {"latent_dim": 4, "output_shape": (2,), "hidden_dims": (8,)}
    args.update(kwargs)
    with pytest.raises(TypeError, match=next(iter(kwargs))):
        MLPGenerator(**args)


def test_generator_rejects_wrong_latent_shape():
    g = MLPGenerator(4, (2,), hidden_dims=(8,))
    with pytest.raises(ValueError, match=r"z.*\(3, 5\)"):
        g(torch.randn(3, 5))


# --------------------------------------------------------------------------- discriminator


@pytest.mark.parametrize("input_shape", [(1, 28, 28), (3, 4, 4), (2,)])
@pytest.mark.parametrize("pieces", [1, 3])
def test_discriminator_logit_shape(input_shape, pieces):
    d = MLPDiscriminator(input_shape, hidden_dims=(8, 8), maxout_pieces=pieces)
    out = d(torch.randn(5, *input_shape))
    assert out.shape == (5,)
    assert d.input_shape == tuple(input_shape)
    # One sample still gives a 1-D batch of logits, not a scalar.
    assert d(torch.randn(1, *input_shape)).shape == (1,)


def test_discriminator_default_structure_matches_paper():
    d = MLPDiscriminator((1, 28, 28))
    dropouts = [m.p for m in d.modules() if isinstance(m, nn.Dropout)]
    assert dropouts == [0.2, 0.5, 0.5]
    linears = [m for m in d.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (784, 240 * 5),
        (240, 240 * 5),
        (240, 1),
    ]


def test_discriminator_gradients_flow():
    d = MLPDiscriminator((1, 6, 6), hidden_dims=(8, 8), maxout_pieces=3)
    d(torch.randn(4, 1, 6, 6)).sum().backward()
    _assert_all_grads_finite(d)


@pytest.mark.parametrize("pieces", [1, 2, 5])
def test_maxout_pieces_parameter_count(pieces):
    n_in, hidden = 12, (7, 5)
    d = MLPDiscriminator((n_in,), hidden_dims=hidden, maxout_pieces=pieces)
    expected = 0
    prev = n_in
    for h in hidden:
        expected += (prev + 1) * h * pieces  # weights + biases, one set per piece
        prev = h
    expected += prev + 1  # final logit layer
    assert sum(p.numel() for p in d.parameters()) == expected


def test_maxout_takes_max_over_pieces():
    d = MLPDiscriminator((3,), hidden_dims=(2,), maxout_pieces=4, dropout=0.0)
    maxout = d.net[1]
    x = torch.randn(6, 3)
    pre = maxout.linear(x).view(6, 2, 4)
    torch.testing.assert_close(maxout(x), pre.max(dim=-1).values)


def test_pieces_one_uses_leaky_relu():
    d = MLPDiscriminator((4,), hidden_dims=(8,), maxout_pieces=1)
    leaky = [m for m in d.modules() if isinstance(m, nn.LeakyReLU)]
    assert len(leaky) == 1 and leaky[0].negative_slope == 0.2


def test_discriminator_float_dropout():
    d = MLPDiscriminator((4,), hidden_dims=(8, 8), dropout=0.3)
    assert [m.p for m in d.modules() if isinstance(m, nn.Dropout)] == [0.3, 0.3, 0.3]
    d0 = MLPDiscriminator((4,), hidden_dims=(8, 8), dropout=0.0)
    assert not any(isinstance(m, nn.Dropout) for m in d0.modules())
    # Without dropout (or in eval mode) the output is deterministic.
    x = torch.randn(3, 4)
    torch.testing.assert_close(d0(x), d0(x))


def test_discriminator_dropout_active_only_in_train():
    torch.manual_seed(0)
    d = MLPDiscriminator((16,), hidden_dims=(32,), maxout_pieces=2)
    x = torch.randn(8, 16)
    assert not torch.equal(d(x), d(x))
    d.eval()
    torch.testing.assert_close(d(x), d(x))


def test_discriminator_spectral_norm():
    d = MLPDiscriminator((1, 4, 4), hidden_dims=(8, 8), maxout_pieces=3, spectral_norm=True)
    linears = [m for m in d.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 3
    assert all(parametrize.is_parametrized(m, "weight") for m in linears)
    d(torch.randn(4, 1, 4, 4)).sum().backward()
    _assert_all_grads_finite(d)
    plain = MLPDiscriminator((1, 4, 4), hidden_dims=(8, 8), maxout_pieces=3)
    assert not any(parametrize.is_parametrized(m) for m in plain.modules())


def test_spectral_norm_bounds_lipschitz_constant():
    # Each weight's largest singular value is normalised to ~1 after a few power iterations.
    torch.manual_seed(0)
    d = MLPDiscriminator((10,), hidden_dims=(6,), maxout_pieces=1, spectral_norm=True, dropout=0.0)
    for _ in range(20):
        d(torch.randn(2, 10))
    for m in d.modules():
        if isinstance(m, nn.Linear):
            sigma = torch.linalg.matrix_norm(m.weight.detach(), ord=2)
            assert math.isclose(float(sigma), 1.0, rel_tol=1e-3)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"input_shape": ()}, r"input_shape.*\(\)"),
        ({"input_shape": (0, 3)}, r"input_shape.*\(0, 3\)"),
        ({"hidden_dims": (0,)}, r"hidden_dims.*\(0,\)"),
        ({"maxout_pieces": 0}, "maxout_pieces.*0"),
        ({"dropout": 1.0}, r"dropout.*1\.0"),
        ({"dropout": -0.1}, r"dropout.*-0\.1"),
        ({"dropout": (0.2, 1.5)}, r"dropout\[1\].*1\.5"),
        ({"dropout": (0.2, 0.5, 0.5)}, r"dropout.*\(0\.2, 0\.5, 0\.5\)"),
    ],
)
def test_discriminator_bad_arguments(kwargs, match):
    args = {"input_shape": (4,), "hidden_dims": (8,)}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        MLPDiscriminator(**args)


@pytest.mark.parametrize(
    "kwargs",
    [{"maxout_pieces": 2.5}, {"dropout": "0.5"}, {"spectral_norm": 1}, {"input_shape": 4}],
)
def test_discriminator_bad_types(kwargs):
    args = {"input_shape": (4,), "hidden_dims": (8,)}
    args.update(kwargs)
    with pytest.raises(TypeError, match=next(iter(kwargs))):
        MLPDiscriminator(**args)


def test_discriminator_rejects_wrong_input_shape():
    d = MLPDiscriminator((1, 4, 4), hidden_dims=(8,))
    with pytest.raises(ValueError, match=r"x.*\(2, 16\)"):
        d(torch.randn(2, 16))

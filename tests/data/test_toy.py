"""Toy 2-D mixtures: the exact density against an independent formula, sampling frequencies, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import cpu_trainer
from scipy.stats import chisquare

from lightning_gan import VanillaGAN
from lightning_gan.data.toy import TOY_DISTRIBUTIONS, GaussianMixture2D, ToyDataModule, grid25, ring8, spiral


def reference_log_density(points: np.ndarray, means: list[tuple[float, float]], std: float) -> np.ndarray:
    """log sum_k (1/K) N(x; mu_k, std^2 I), written from the textbook formula with no shared code."""
    out = []
    for x, y in points.tolist():
        density = 0.0
        for mx, my in means:
            squared = (x - mx) ** 2 + (y - my) ** 2
            density += math.exp(-squared / (2 * std**2)) / (2 * math.pi * std**2) / len(means)
        out.append(math.log(density))
    return np.array(out)


RING8_MEANS = [(2.0 * math.cos(2 * math.pi * k / 8), 2.0 * math.sin(2 * math.pi * k / 8)) for k in range(8)]
GRID25_MEANS = [(2.0 * i, 2.0 * j) for i in range(-2, 3) for j in range(-2, 3)]


@pytest.mark.parametrize(("name", "means"), [("ring8", RING8_MEANS), ("grid25", GRID25_MEANS)])
def test_log_prob_matches_the_mixture_density_written_out_by_hand(name, means):
    dm = ToyDataModule(name, n_samples=10, n_val=0, n_test=0)
    rng = np.random.default_rng(0)
    # Points within ~3 stds of a mode, where the density is far from underflowing in the reference formula.
    centres = np.array(means)[rng.integers(len(means), size=200)]
    points = centres + rng.normal(scale=0.05, size=(200, 2)) * rng.uniform(0.0, 3.0, size=(200, 1))
    expected = reference_log_density(points, means, std=0.05)

    actual = dm.log_prob(torch.from_numpy(points))

    assert actual.dtype == torch.float64 and actual.shape == (200,)
    np.testing.assert_allclose(actual.numpy(), expected, rtol=1e-6, atol=1e-6)


def test_log_prob_is_finite_far_from_every_mode_where_the_density_underflows():
    log_p = ring8().log_prob(torch.tensor([[50.0, 50.0]]))
    assert torch.isfinite(log_p).all() and log_p.item() < -1e5


@pytest.mark.parametrize("name", sorted(TOY_DISTRIBUTIONS))
def test_density_integrates_to_one(name):
    mixture = TOY_DISTRIBUTIONS[name]()
    lo = float(mixture.means.min()) - 1.0
    hi = float(mixture.means.max()) + 1.0
    # A grid's Riemann sum of a Gaussian errs by ~exp(-2 pi^2 std^2 / h^2): ~4e-14 at h = 0.8 std.
    h = 0.8 * float(mixture.stds.min())
    axis = torch.arange(lo, hi, h, dtype=torch.float64)
    xs, ys = torch.meshgrid(axis, axis, indexing="ij")
    grid = torch.stack([xs.flatten(), ys.flatten()], dim=1)
    total = sum(mixture.log_prob(chunk).exp().sum().item() for chunk in grid.split(100_000)) * h * h
    assert total == pytest.approx(1.0, abs=1e-3)


def test_sampled_component_frequencies_pass_a_chi_square_test_and_a_skewed_sample_fails_it():
    dm = ToyDataModule("grid25", n_samples=20_000, n_val=0, n_test=0, seed=3)
    labels = dm._splits["train"][1]
    counts = torch.bincount(labels, minlength=25).numpy()
    expected = np.full(25, len(labels) / 25)
    assert chisquare(counts, expected).pvalue > 0.01

    skewed = GaussianMixture2D(grid25().means, 0.05, weights=[0.06] + [0.94 / 24] * 24)
    _, skewed_labels = skewed.sample(20_000, generator=torch.Generator().manual_seed(3))
    skewed_counts = torch.bincount(skewed_labels, minlength=25).numpy()
    assert chisquare(skewed_counts, expected).pvalue < 0.01


def test_unequal_weights_are_sampled_in_proportion():
    mixture = GaussianMixture2D([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]], stds=[0.1, 0.2, 0.3], weights=[0.2, 0.5, 0.3])
    _, labels = mixture.sample(30_000, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(labels, minlength=3).numpy()
    assert chisquare(counts, 30_000 * np.array([0.2, 0.5, 0.3])).pvalue > 0.01


@pytest.mark.parametrize("name", sorted(TOY_DISTRIBUTIONS))
def test_samples_lie_near_their_labelled_component(name):
    dm = ToyDataModule(name, n_samples=5_000, n_val=0, n_test=0)
    points, labels = dm._splits["train"]
    mixture = dm.distribution
    distance = (points.double() - mixture.means[labels]).norm(dim=1)
    # P(|N(0, I_2)| > 5) = exp(-12.5) ~ 4e-6 per point.
    assert (distance < 5 * mixture.stds[labels]).all()
    assert points.dtype == torch.float32 and labels.dtype == torch.int64


def test_factories_place_the_modes_where_documented():
    assert torch.allclose(ring8().means, torch.tensor(RING8_MEANS, dtype=torch.float64))
    assert sorted(map(tuple, grid25().means.tolist())) == sorted(GRID25_MEANS)
    assert torch.allclose(ring8(radius=3.0, std=0.2).stds, torch.full((8,), 0.2, dtype=torch.float64))
    s = spiral()
    radii = s.means.norm(dim=1)
    assert s.num_components == 100
    assert (radii.diff() > 0).all() and radii.max().item() == pytest.approx(4.0)
    assert torch.allclose(s.weights.sum(), torch.tensor(1.0, dtype=torch.float64))


def test_same_seed_gives_identical_data_and_a_different_seed_different_data():
    first = ToyDataModule("spiral", n_samples=300, n_val=50, n_test=50, seed=7)
    again = ToyDataModule("spiral", n_samples=300, n_val=50, n_test=50, seed=7)
    other = ToyDataModule("spiral", n_samples=300, n_val=50, n_test=50, seed=8)
    for split in ("train", "val", "test"):
        for a, b in zip(first._splits[split], again._splits[split]):
            assert torch.equal(a, b)
        assert not torch.equal(first._splits[split][0], other._splits[split][0])
    # Each split is its own draw, not a copy of the start of the training one.
    assert not torch.equal(first._splits["train"][0][:50], first._splits["val"][0])


def test_the_draw_ignores_the_global_random_state():
    torch.manual_seed(1)
    a = ToyDataModule(n_samples=100, n_val=0, n_test=0)
    torch.manual_seed(2)
    b = ToyDataModule(n_samples=100, n_val=0, n_test=0)
    assert torch.equal(a._splits["train"][0], b._splits["train"][0])


def test_loaders_yield_point_and_label_batches():
    dm = ToyDataModule("grid25", n_samples=1_000, n_val=300, n_test=100, batch_size=128)
    assert dm.image_shape == (2,) and dm.num_classes == 25
    dm.setup("fit")
    train = list(dm.train_dataloader())
    assert len(train) == 1_000 // 128
    for points, labels in train:
        assert points.shape == (128, 2) and points.dtype == torch.float32
        assert labels.shape == (128,) and labels.dtype == torch.int64
        assert labels.min() >= 0 and labels.max() < 25
    assert sum(len(b[0]) for b in dm.val_dataloader()) == 300
    assert sum(len(b[0]) for b in dm.test_dataloader()) == 100


def test_num_classes_counts_components_that_drew_no_sample():
    assert ToyDataModule("grid25", n_samples=1, n_val=0, n_test=0, batch_size=1).num_classes == 25


def test_empty_val_and_test_splits_give_empty_loaders():
    dm = ToyDataModule(n_samples=64, n_val=0, n_test=0, batch_size=32)
    assert list(dm.val_dataloader()) == [] and list(dm.test_dataloader()) == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(name="moons"), r"moons.*grid25.*ring8.*spiral"),
        (dict(name=["ring8"]), r"name.*\['ring8'\]"),
        (dict(batch_size=0), r"batch_size.*0"),
        (dict(batch_size=2.5), r"batch_size.*2\.5"),
        (dict(n_samples=0), r"n_samples.*0"),
        (dict(n_val=-1), r"n_val.*-1"),
        (dict(n_test=1.5), r"n_test.*1\.5"),
        (dict(seed="0"), r"seed"),
    ],
)
def test_bad_arguments_are_refused_by_name(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ToyDataModule(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(means=[[0.0, 0.0, 0.0]]), r"means.*\(K, 2\)"),
        (dict(means=[[0.0, 0.0]], stds=0.0), r"stds.*> 0"),
        (dict(means=[[0.0, 0.0]] * 2, stds=[1.0, 1.0, 1.0]), r"stds.*\(2,\)"),
        (dict(means=[[0.0, 0.0]] * 2, weights=[0.5, 0.6]), r"weights.*sum to 1"),
        (dict(means=[[0.0, 0.0]] * 2, weights=[1.5, -0.5]), r"weights.*>= 0"),
    ],
)
def test_bad_mixture_parameters_are_refused_by_name(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixture2D(**kwargs)


def test_log_prob_refuses_points_not_in_the_plane():
    with pytest.raises(ValueError, match=r"x.*\(n, 2\).*\(4, 3\)"):
        ring8().log_prob(torch.zeros(4, 3))


@pytest.mark.filterwarnings("ignore:Total length of `DataLoader` across ranks is zero")
@pytest.mark.parametrize("n_val", [0, 64])
def test_a_gan_fits_on_it_with_or_without_a_validation_split(n_val):
    gan = VanillaGAN(
        image_shape=(2,),
        latent_dim=2,
        generator_hidden=(16,),
        discriminator_hidden=(16,),
        maxout_pieces=1,
        dropout=0.0,
        output_activation="identity",
    )
    trainer = cpu_trainer(max_epochs=1)
    trainer.fit(gan, ToyDataModule(n_samples=256, n_val=n_val, n_test=0, batch_size=64))
    assert trainer.global_step == 4
    assert ("val/d_real" in trainer.callback_metrics) == bool(n_val)

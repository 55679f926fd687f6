"""ParzenLikelihoodCallback and ToyLikelihoodCallback end to end on CPU with a tiny 2-D GAN."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from conftest import cpu_trainer

from lightning_gan import VanillaGAN
from lightning_gan.callbacks.likelihood import ParzenLikelihoodCallback, ToyLikelihoodCallback
from lightning_gan.data import TensorDataModule
from lightning_gan.data.toy import ToyDataModule, grid25, ring8
from lightning_gan.metrics.parzen import ParzenLogLikelihood
from lightning_gan.metrics.toy import ModeCoverage

DDP_SCRIPT = Path(__file__).with_name("ddp_likelihood_script.py")
VAL_KEYS = {"val/parzen_log_likelihood", "val/parzen_sigma", "val/parzen_stderr"}
TEST_KEYS = {"test/parzen_log_likelihood", "test/parzen_stderr", "test/parzen_bits_per_dim", "test/parzen_sigma"}
MODE_KEYS = {"modes_covered", "high_quality_share", "mode_kl"}


class TestableGAN(VanillaGAN):
    __test__ = False  # not a pytest test class

    """``Trainer.test`` needs a ``test_step``; the callbacks do their work in their own test hooks."""

    def test_step(self, batch, batch_idx) -> None:
        return None


def tiny_gan() -> VanillaGAN:
    return TestableGAN(image_shape=(2,), latent_dim=2, generator_hidden=(16,), discriminator_hidden=(16,),
                       maxout_pieces=1, dropout=0.0, output_activation="identity")


def ring_data(batch_size: int = 64) -> TensorDataModule:
    mixture = ring8(radius=0.75)  # inside [-1, 1], the Parzen callback's default value_range
    g = torch.Generator().manual_seed(0)
    train, val, test = (mixture.sample(n, generator=g)[0] for n in (256, 128, 96))
    return TensorDataModule(train, val=val, test=test, batch_size=batch_size)


def count_generated(gan: VanillaGAN) -> list[int]:
    """Records the size of every ``generate`` call on ``gan``."""
    calls: list[int] = []
    original = gan.generate

    def generate(n: int) -> torch.Tensor:
        calls.append(n)
        return original(n)

    gan.generate = generate
    return calls


def test_parzen_callback_logs_validation_then_tests_with_the_validation_sigma():
    gan, data = tiny_gan(), ring_data()
    calls = count_generated(gan)
    callback = ParzenLikelihoodCallback(num_samples=250, batch_size=100)
    trainer = cpu_trainer(max_epochs=1, limit_train_batches=3, callbacks=[callback])
    trainer.fit(gan, datamodule=data)

    assert calls == [100, 100, 50]  # one validation run (the sanity check is skipped), in batches
    assert VAL_KEYS <= set(trainer.callback_metrics)
    assert all(math.isfinite(trainer.callback_metrics[k].item()) for k in VAL_KEYS)
    val = callback.results["val"]
    assert val["log_likelihood"].shape == (10,)
    assert callback.best_sigma == pytest.approx(val["sigmas"][val["log_likelihood"].argmax()].item())
    assert trainer.callback_metrics["val/parzen_sigma"].item() == pytest.approx(callback.best_sigma, rel=1e-6)
    assert trainer.callback_metrics["val/parzen_log_likelihood"].item() == pytest.approx(val["log_likelihood"].max().item(), rel=1e-6)

    (logged,) = trainer.test(gan, datamodule=data, verbose=False)
    assert TEST_KEYS <= set(logged)
    assert all(math.isfinite(logged[k]) for k in TEST_KEYS)
    assert logged["test/parzen_sigma"] == pytest.approx(callback.best_sigma, rel=1e-6)
    test = callback.results["test"]
    assert test["sigmas"].tolist() == [callback.best_sigma]  # only the validation sigma is evaluated
    assert logged["test/parzen_bits_per_dim"] == pytest.approx(-test["best_log_likelihood"].item() / (2 * math.log(2)), rel=1e-5)


def test_test_without_validation_chooses_sigma_on_test_data_and_warns():
    gan, data = tiny_gan(), ring_data()
    callback = ParzenLikelihoodCallback(num_samples=100, sigmas=[0.1, 0.3])
    trainer = cpu_trainer(callbacks=[callback])
    with pytest.warns(UserWarning, match="chosen on the test set"):
        (logged,) = trainer.test(gan, datamodule=data, verbose=False)
    assert TEST_KEYS <= set(logged)
    assert logged["test/parzen_sigma"] in (pytest.approx(0.1), pytest.approx(0.3))
    assert callback.best_sigma is None  # a test run does not set it


def test_every_n_epochs_skips_other_epochs_and_validate_always_runs():
    gan, data = tiny_gan(), ring_data()
    calls = count_generated(gan)
    callback = ParzenLikelihoodCallback(num_samples=50, every_n_epochs=2)
    trainer = cpu_trainer(max_epochs=3, limit_train_batches=1, num_sanity_val_steps=0, callbacks=[callback])
    trainer.fit(gan, datamodule=data)
    assert calls == [50]  # epoch index 1 only
    (logged,) = trainer.validate(gan, datamodule=data, verbose=False)
    assert VAL_KEYS <= set(logged) and calls == [50, 50]


def test_generating_samples_leaves_training_randomness_alone():
    weights = []
    for callbacks in ([], [ParzenLikelihoodCallback(num_samples=64)]):
        torch.manual_seed(0)
        gan = tiny_gan()
        trainer = cpu_trainer(max_epochs=2, limit_train_batches=2, num_sanity_val_steps=0, callbacks=callbacks)
        trainer.fit(gan, datamodule=ring_data())
        weights.append(torch.cat([p.detach().flatten() for p in gan.generator.parameters()]))
    assert torch.equal(weights[0], weights[1])


def test_callback_state_carries_the_chosen_sigma():
    callback = ParzenLikelihoodCallback()
    callback.best_sigma = 0.25
    restored = ParzenLikelihoodCallback()
    restored.load_state_dict(callback.state_dict())
    assert restored.best_sigma == 0.25


class FixedGAN(TestableGAN):
    """Generates the rows of a fixed tensor, in order: the callback's centres are known exactly."""

    def __init__(self, samples: torch.Tensor) -> None:
        super().__init__(image_shape=(2,), latent_dim=2, generator_hidden=(8,), discriminator_hidden=(8,),
                         maxout_pieces=1, dropout=0.0, output_activation="identity")
        self.samples = samples
        self.drawn = 0

    def generate(self, n: int) -> torch.Tensor:
        out = self.samples[self.drawn : self.drawn + n]
        self.drawn += n
        return out


def test_parzen_callback_reports_in_unit_pixel_units_by_default():
    """Data and samples in [-1, 1] give the numbers of the same in [0, 1]: 2 ln 2 above the old, unscaled ones."""
    g = torch.Generator().manual_seed(3)
    samples, val = torch.rand(200, 2, generator=g) * 2 - 1, torch.rand(96, 2, generator=g) * 2 - 1
    data = TensorDataModule(val, val=val, batch_size=32)
    callback = ParzenLikelihoodCallback(num_samples=200, sigmas=[0.02, 0.05, 0.1, 0.2], batch_size=50)
    trainer = cpu_trainer(callbacks=[callback])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # in range, and the best sigma is inside the grid
        (logged,) = trainer.validate(FixedGAN(samples), datamodule=data, verbose=False)
    unit = ParzenLogLikelihood(sigmas=[0.02, 0.05, 0.1, 0.2])
    unit.set_centres((samples.double() + 1) / 2)
    unit.update((val.double() + 1) / 2)
    expected = unit.compute()
    assert callback.results["val"]["log_likelihood"].tolist() == pytest.approx(expected["log_likelihood"].tolist(), abs=1e-6)
    assert logged["val/parzen_log_likelihood"] == pytest.approx(expected["best_log_likelihood"].item(), abs=1e-5)
    assert logged["val/parzen_sigma"] == pytest.approx(expected["best_sigma"].item())
    # The old behaviour: the same windows in [-1, 1] units (twice as wide), d ln 2 lower.
    old = ParzenLogLikelihood(sigmas=[0.04, 0.1, 0.2, 0.4])
    old.set_centres(samples)
    old.update(val)
    assert (callback.results["val"]["log_likelihood"] - old.compute()["log_likelihood"]).tolist() == pytest.approx(
        [2 * math.log(2)] * 4, abs=1e-5)


def test_parzen_callback_warns_at_the_edge_of_the_grid_and_outside_the_value_range():
    gan, data = tiny_gan(), ring_data()
    callback = ParzenLikelihoodCallback(num_samples=64, sigmas=[5.0, 10.0])  # far too wide: the smallest wins
    trainer = cpu_trainer(callbacks=[callback])
    with pytest.warns(UserWarning, match=r"chosen sigma 5 is the smallest of the grid \[5.0, 10.0\]"):
        trainer.validate(gan, datamodule=data, verbose=False)
    callback = ParzenLikelihoodCallback(num_samples=64, value_range=(0.0, 1.0))  # the ring reaches -0.8
    trainer = cpu_trainer(callbacks=[callback])
    with pytest.warns(UserWarning, match=r"outside the declared value_range=\(0.0, 1.0\)"):
        trainer.validate(gan, datamodule=data, verbose=False)


def test_toy_callback_logs_sample_quality_and_coverage_from_the_datamodule():
    gan = tiny_gan()
    data = ToyDataModule("ring8", n_samples=256, n_val=128, n_test=64, batch_size=64)
    callback = ToyLikelihoodCallback(num_samples=200, mode_coverage_samples=100)
    trainer = cpu_trainer(max_epochs=1, limit_train_batches=3, callbacks=[callback])
    trainer.fit(gan, datamodule=data)
    metrics = trainer.callback_metrics
    val_keys = VAL_KEYS | {"val/log_prob_of_samples"} | {f"val/{k}" for k in MODE_KEYS}
    assert val_keys <= set(metrics)
    assert all(math.isfinite(metrics[k].item()) for k in VAL_KEYS | {"val/log_prob_of_samples"})
    assert 0 <= metrics["val/modes_covered"].item() <= 8
    assert callback.results["val"]["sigmas"][0].item() == pytest.approx(0.01)  # the toy grid
    (logged,) = trainer.test(gan, datamodule=data, verbose=False)
    assert (TEST_KEYS | {"test/log_prob_of_samples"} | {f"test/{k}" for k in MODE_KEYS}) <= set(logged)


def test_mode_coverage_reuses_the_parzen_samples_or_draws_its_own():
    mixture = grid25()
    samples = mixture.sample(600, generator=torch.Generator().manual_seed(4))[0]
    data = ToyDataModule("grid25", n_samples=64, n_val=64, n_test=0, batch_size=64)
    # Enough Parzen samples: the first 250 of them, no other generate call.
    gan = FixedGAN(samples)
    callback = ToyLikelihoodCallback(num_samples=300, mode_coverage_samples=250, batch_size=1000)
    (logged,) = cpu_trainer(callbacks=[callback]).validate(gan, datamodule=data, verbose=False)
    assert gan.drawn == 300
    reference = ModeCoverage(mixture.means, mixture.stds)
    reference.update(samples[:250])
    expected = reference.compute()
    for key in MODE_KEYS:
        assert logged[f"val/{key}"] == pytest.approx(expected[key].item(), rel=1e-6), key
    # Too few: a draw of its own, after the Parzen one.
    gan = FixedGAN(samples)
    callback = ToyLikelihoodCallback(num_samples=100, mode_coverage_samples=250, batch_size=1000)
    (logged,) = cpu_trainer(callbacks=[callback]).validate(gan, datamodule=data, verbose=False)
    assert gan.drawn == 350
    reference.reset()
    reference.update(samples[100:350])
    expected = reference.compute()
    for key in MODE_KEYS:
        assert logged[f"val/{key}"] == pytest.approx(expected[key].item(), rel=1e-6), key


def test_a_second_draw_in_one_hook_gives_new_samples():
    gan = tiny_gan()
    callback = ParzenLikelihoodCallback()
    first, again, other = (callback._generate(gan, 50, stream=s) for s in (0, 0, 1))
    assert torch.equal(first, again)  # the fork restores the RNG: the same stream repeats
    assert not torch.equal(first, other)


def test_toy_callback_takes_an_explicit_log_prob_and_scores_mode_collapse():
    """A generator collapsed onto one mode: top sample quality, poor coverage of the 8 modes."""
    mixture = ring8()

    class Collapsed(VanillaGAN):
        def generate(self, n: int) -> torch.Tensor:
            return mixture.means[0].float() + 0.05 * torch.randn(n, 2)

    def run(gan: VanillaGAN) -> dict[str, float]:
        g = torch.Generator().manual_seed(1)
        data = TensorDataModule(mixture.sample(64, generator=g)[0], val=mixture.sample(256, generator=g)[0], batch_size=64)
        trainer = cpu_trainer(max_epochs=1, limit_train_batches=1, num_sanity_val_steps=0,
                              callbacks=[ToyLikelihoodCallback(mixture.log_prob, num_samples=800)])
        trainer.fit(gan, datamodule=data)
        return {k: v.item() for k, v in trainer.callback_metrics.items()}

    class Perfect(VanillaGAN):
        def generate(self, n: int) -> torch.Tensor:
            return mixture.sample(n)[0]

    kwargs = dict(image_shape=(2,), latent_dim=2, generator_hidden=(8,), discriminator_hidden=(8,), maxout_pieces=1,
                  dropout=0.0, output_activation="identity")
    collapsed, perfect = run(Collapsed(**kwargs)), run(Perfect(**kwargs))
    # Sample quality: the collapsed samples sit on a mode just like the real ones.
    assert collapsed["val/log_prob_of_samples"] == pytest.approx(perfect["val/log_prob_of_samples"], abs=0.3)
    # Coverage: 7 of the 8 modes have no samples near them.
    assert collapsed["val/parzen_log_likelihood"] < perfect["val/parzen_log_likelihood"] - 5
    # Mode coverage on 2,500 samples (a draw of their own: num_samples is 800), modes from the log_prob's mixture.
    # Perfect: every mode, 1 - exp(-9/2) = 98.9% within 3 stds in 2-D, and a KL of ~(K - 1) / (2N) = 0.0014.
    assert perfect["val/modes_covered"] == 8
    assert perfect["val/high_quality_share"] == pytest.approx(1 - math.exp(-4.5), abs=0.01)
    assert 0 <= perfect["val/mode_kl"] < 0.01
    # Collapsed: one mode holds every high-quality sample, the KL to uniform is log 8.
    assert collapsed["val/modes_covered"] == 1
    assert collapsed["val/high_quality_share"] == pytest.approx(1 - math.exp(-4.5), abs=0.01)
    assert collapsed["val/mode_kl"] == pytest.approx(math.log(8), rel=1e-6)  # logged as float32


def test_toy_callback_without_any_log_prob_is_refused():
    trainer = cpu_trainer(max_epochs=1, limit_train_batches=1, callbacks=[ToyLikelihoodCallback()])
    with pytest.raises(ValueError, match="log_prob"):
        trainer.fit(tiny_gan(), datamodule=ring_data())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(log_prob=lambda x: x.sum(-1)), r"no mixture to take the modes from.*`mode_coverage_samples=0`"),
        (dict(log_prob=ring8().log_prob, mode_means=[[0.0, 0.0]]), r"both `mode_means` and `mode_stds`"),
        (dict(log_prob=ring8().log_prob, mode_coverage_samples=-1), r"`mode_coverage_samples` must be an integer >= 0, got -1"),
        (dict(log_prob=ring8().log_prob, mode_means=[[0.0, 0.0]], mode_stds=-1.0), r"`stds` must be finite and > 0"),
    ],
)
def test_toy_callback_mode_coverage_arguments_are_checked_at_setup(kwargs, match):
    trainer = cpu_trainer(max_epochs=1, limit_train_batches=1, callbacks=[ToyLikelihoodCallback(**kwargs)])
    with pytest.raises(ValueError, match=match):
        trainer.fit(tiny_gan(), datamodule=ring_data())


def test_toy_callback_without_modes_runs_with_mode_coverage_off():
    callback = ToyLikelihoodCallback(lambda x: -x.pow(2).sum(-1).double(), num_samples=32, mode_coverage_samples=0)
    (logged,) = cpu_trainer(callbacks=[callback]).validate(tiny_gan(), datamodule=ring_data(), verbose=False)
    assert "val/log_prob_of_samples" in logged and not any(f"val/{k}" in logged for k in MODE_KEYS)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_samples=0), r"`num_samples` must be an integer >= 1, got 0"),
        (dict(every_n_epochs=0), r"`every_n_epochs` must be an integer >= 1, got 0"),
        (dict(batch_size=-3), r"`batch_size` must be an integer >= 1, got -3"),
        (dict(chunk_size=2.5), r"`chunk_size` must be an integer >= 1, got 2.5"),
        (dict(sigmas=[0.1, -1.0]), r"sigma.*-1.0"),
        (dict(sigmas=[]), r"sigmas"),
        (dict(value_range=(1.0, -1.0)), r"`value_range` must be finite with low < high, got \(1.0, -1.0\)"),
        (dict(value_range=[0.0, 255.0, 1.0]), r"`value_range` must be None or a pair"),
    ],
)
def test_bad_arguments_are_refused_at_setup(kwargs, match):
    trainer = cpu_trainer(max_epochs=1, limit_train_batches=1, callbacks=[ParzenLikelihoodCallback(**kwargs)])
    with pytest.raises((ValueError, TypeError), match=match):
        trainer.fit(tiny_gan(), datamodule=ring_data())


def test_two_processes_each_draw_their_share_and_hold_the_same_centres(tmp_path):
    out = tmp_path / "ranks.json"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(
        [sys.executable, str(DDP_SCRIPT), str(out)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ranks = json.loads(out.read_text())
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["world_size"] == 2 for r in ranks)
    assert [r["local"] for r in ranks] == [51, 50]  # 101 samples: the odd one on rank 0
    centres = [torch.tensor(r["centres"], dtype=torch.float64) for r in ranks]
    assert centres[0].shape == (101, 2) and torch.equal(centres[0], centres[1])
    assert len(torch.unique(centres[0], dim=0)) == 101  # the ranks drew different samples
    val = torch.tensor(ranks[0]["val"], dtype=torch.float64)
    # One process with the same centres and the whole validation set gives the same numbers.
    from lightning_gan.metrics.parzen import ParzenLogLikelihood
    from lightning_gan.metrics.toy import LogProbOfSamples

    parzen = ParzenLogLikelihood(sigmas=ranks[0]["sigmas"])
    parzen.set_centres(centres[0])
    parzen.update(val)
    expected = parzen.compute()
    quality = LogProbOfSamples(ring8().log_prob)
    quality.update(centres[0])
    # mode_coverage_samples = num_samples: each rank scores exactly its own Parzen samples, summed over ranks.
    coverage = ModeCoverage(ring8().means, ring8().stds)
    coverage.update(centres[0])
    expected_modes = coverage.compute()
    for rank in ranks:
        assert rank["log_likelihood"] == pytest.approx(expected["log_likelihood"].tolist(), abs=1e-6)
        assert rank["stderr"] == pytest.approx(expected["stderr"].tolist(), abs=1e-6)
        assert rank["logged"]["val/parzen_log_likelihood"] == pytest.approx(expected["best_log_likelihood"].item(), rel=1e-6)
        assert rank["logged"]["val/log_prob_of_samples"] == pytest.approx(quality.compute().item(), rel=1e-6)
        # AIS: the ranks' merged estimate over 63 points equals one process scoring them all in one batch.
        assert rank["ais_count"] == 63
        assert rank["logged"]["val/ais_log_likelihood"] == pytest.approx(rank["ais_alone"], rel=1e-6)
        assert rank["logged"]["val/ais_bdmc_gap"] == ranks[0]["logged"]["val/ais_bdmc_gap"]
        for key in MODE_KEYS:
            # An untrained generator may have no high-quality sample: mode_kl is then NaN on every rank.
            assert rank["logged"][f"val/{key}"] == pytest.approx(expected_modes[key].item(), rel=1e-6, nan_ok=True), key

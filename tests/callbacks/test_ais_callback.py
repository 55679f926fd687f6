"""AISLikelihoodCallback: what it logs, that it equals the metric run by hand, test reuse of sigma, refusals."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

import lightning_gan
from lightning_gan.callbacks import AISLikelihoodCallback
from lightning_gan.callbacks.ais import differentiable_generator
from lightning_gan.data import TensorDataModule
from lightning_gan.metrics import AISLogLikelihood


def tiny_gan(**overrides) -> lightning_gan.VanillaGAN:
    options = dict(image_shape=(6,), latent_dim=3, generator_hidden=(16,), discriminator_hidden=(16,),
                   maxout_pieces=1, dropout=0.0, ema_decay=0.9)
    options.update(overrides)
    return lightning_gan.VanillaGAN(**options)


def trainer(callback: pl.Callback, **kwargs) -> pl.Trainer:
    return pl.Trainer(accelerator="cpu", max_epochs=1, callbacks=[callback], logger=False, enable_progress_bar=False,
                      enable_checkpointing=False, enable_model_summary=False, num_sanity_val_steps=0, **kwargs)


def test_logs_the_metric_of_the_first_validation_points_and_the_bdmc_gap():
    torch.manual_seed(0)
    val = torch.rand(20, 6) * 2 - 1
    data = TensorDataModule(torch.rand(64, 6) * 2 - 1, val=val, test=val.flip(0), batch_size=16)
    options = dict(sigmas=[0.1, 0.2, 0.4], num_steps=15, num_chains=3, leapfrog_steps=4, seed=2)
    callback = AISLikelihoodCallback(num_points=12, bdmc_points=4, batch_size=5, **options)
    gan = tiny_gan()
    run = trainer(callback)
    run.fit(gan, data)
    logged = run.callback_metrics
    for name in ("log_likelihood", "stderr", "sigma", "acceptance", "bdmc_gap"):
        assert torch.isfinite(logged[f"val/ais_{name}"]), name
    # By hand: the same generator (the moving average), the first 12 points in one batch, [0, 1]-pixel units.
    generator, latent_dim = differentiable_generator(gan)
    assert generator is not None and latent_dim == 3
    metric = AISLogLikelihood(latent_dim=3, value_range=(-1.0, 1.0), generator=generator, **options)
    metric.update(val[:12], point_ids=torch.arange(12))
    expected = metric.compute()
    assert logged["val/ais_log_likelihood"].item() == pytest.approx(expected["best_log_likelihood"].item(), rel=1e-6)
    assert logged["val/ais_sigma"].item() == pytest.approx(expected["best_sigma"].item())
    assert callback.best_sigma == pytest.approx(expected["best_sigma"].item())
    assert callback.results["val"]["num_points"].item() == 12
    # test() scores the test split at the chosen sigma only.
    run.test(gan, data, verbose=False)
    assert callback.results["test"]["sigmas"].tolist() == [callback.best_sigma]
    assert "test/ais_bits_per_dim" in run.callback_metrics
    assert callback.state_dict() == {"best_sigma": callback.best_sigma}


def test_every_n_epochs_and_the_sanity_check_are_respected():
    data = TensorDataModule(torch.rand(32, 6) * 2 - 1, val=torch.rand(8, 6) * 2 - 1, batch_size=16)
    callback = AISLikelihoodCallback(num_points=4, sigmas=[0.3], num_steps=3, num_chains=2, bdmc_points=0,
                                     every_n_epochs=2)
    pl.Trainer(accelerator="cpu", max_epochs=1, callbacks=[callback], logger=False, enable_progress_bar=False,
               enable_checkpointing=False, enable_model_summary=False).fit(tiny_gan(), data)
    assert callback.results == {} and callback.best_sigma is None


def test_a_conditional_gan_or_bad_options_are_refused_before_training():
    data = TensorDataModule(torch.rand(32, 6) * 2 - 1, val=torch.rand(8, 6) * 2 - 1, batch_size=16)
    with pytest.raises(ValueError, match="num_chains"):
        trainer(AISLikelihoodCallback(num_chains=0)).fit(tiny_gan(), data)
    conditional = lightning_gan.ConditionalGAN(num_classes=2, image_shape=(6,), latent_dim=2, architecture="mlp",
                                               generator_hidden=(8,), discriminator_hidden=(8,))
    with pytest.raises(TypeError, match="class-conditional"):
        differentiable_generator(conditional)

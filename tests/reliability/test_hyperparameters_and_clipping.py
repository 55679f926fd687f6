"""Non-finite hyper-parameters are refused by name; clipping sees unscaled gradients under 16-mixed (#13, items 3, 5)."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import batch_loader, cpu_trainer
from pytorch_lightning.plugins.precision import MixedPrecision

from lightning_gan import VanillaGAN


def toy_gan(**kwargs) -> VanillaGAN:
    return VanillaGAN(image_shape=(2,), latent_dim=2, generator_hidden=(16,), discriminator_hidden=(16,),
                      maxout_pieces=1, dropout=0.0, output_activation="identity", **kwargs)


@pytest.mark.parametrize("name", ["lr_g", "lr_d", "gp_weight", "r1_gamma", "gradient_clip_val"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_hyperparameters_are_refused_by_name(name, value):
    with pytest.raises(ValueError, match=rf"`{name}` must be .*finite.*got {value!r}"):
        toy_gan(**{name: value})


def test_a_trainer_clip_value_that_lightning_ignores_is_refused():
    trainer = cpu_trainer(max_steps=1, gradient_clip_val=-1)
    with pytest.raises(ValueError, match=r"Trainer\(gradient_clip_val=-1\)` has no effect.*gradient_clip_val=1\.0"):
        trainer.fit(toy_gan(), batch_loader(torch.randn(64, 2), batch_size=32))
    assert trainer.global_step == 0


class RecordingGAN(VanillaGAN):
    """Records each optimizer's gradient norm as the step sees it (after clipping)."""

    norms: list[float]

    def on_before_optimizer_step(self, optimizer) -> None:
        super().on_before_optimizer_step(optimizer)
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        self.norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))


def test_clipping_under_a_grad_scaler_applies_to_the_unscaled_gradients():
    # 16-mixed on a GPU: Lightning's MixedPrecision plugin with a GradScaler; emulated here on the CPU.
    model = RecordingGAN(image_shape=(2,), latent_dim=2, generator_hidden=(16,), discriminator_hidden=(16,),
                         maxout_pieces=1, dropout=0.0, output_activation="identity", gradient_clip_val=1.0)
    model.norms = []
    plugin = MixedPrecision("16-mixed", device="cpu", scaler=torch.amp.GradScaler("cpu", init_scale=2.0**15))
    trainer = cpu_trainer(max_steps=3, plugins=[plugin])
    trainer.fit(model, batch_loader(torch.randn(128, 2) * 3, batch_size=32))
    finite = [n for n in model.norms if math.isfinite(n)]
    assert finite and max(finite) <= 1.0 + 1e-4
    # Clipped before unscaling, the norms would be about 1 / 32768 = 3e-5.
    assert max(finite) > 1e-2, model.norms

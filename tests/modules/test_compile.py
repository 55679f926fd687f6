"""``GAN(compile=...)``: the compiled step trains as the eager one, within float tolerance.

The tests compile with the ``aot_eager`` backend: TorchDynamo captures the same graphs and AOTAutograd
derives the same backward as with the default inductor backend, without inductor's C++ code generation,
which takes ~45 s per model on the CI's 2 cores. ``LIGHTNING_GAN_SLOW_TESTS=1`` adds the inductor run.
"""

from __future__ import annotations

import copy
import os
import pickle
import warnings

import pytest
import pytorch_lightning as pl
import torch
from conftest import cpu_trainer

from lightning_gan import ConditionalGAN, VanillaGAN
from lightning_gan.data import TensorDataModule

AOT_EAGER = {"backend": "aot_eager"}
STEPS = 5
TOY = dict(image_shape=(2,), latent_dim=2, generator_hidden=(16, 16), discriminator_hidden=(16, 16), maxout_pieces=1,
           dropout=0.0, output_activation="identity")
CONFIGS = {
    "non_saturating": lambda **kw: VanillaGAN(**TOY, ema_decay=0.9, **kw),
    "wgan_gp": lambda **kw: VanillaGAN(**TOY, loss="wasserstein", gp_weight=10.0, n_critic=2, **kw),
    "hinge_r1": lambda **kw: VanillaGAN(**TOY, loss="hinge", r1_gamma=1.0, **kw),
    "conditional": lambda **kw: ConditionalGAN(num_classes=4, image_shape=(2,), latent_dim=2, architecture="mlp",
                                               generator_hidden=(16,), discriminator_hidden=(16,),
                                               output_activation="identity", **kw),
}
DATA = torch.randn(64 * STEPS, 2)
LABELS = torch.arange(64 * STEPS) % 4


class StepLosses(pl.Callback):
    def __init__(self) -> None:
        self.losses: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append({k: float(v) for k, v in pl_module.last_step_metrics.items() if k.startswith("loss")})


def train(config: str, **options):
    pl.seed_everything(0, verbose=False)
    gan = CONFIGS[config](**options)
    data = TensorDataModule((DATA, LABELS) if config == "conditional" else DATA, batch_size=64)
    record = StepLosses()
    cpu_trainer(max_steps=STEPS, callbacks=[record]).fit(gan, datamodule=data)
    return gan, record.losses


@pytest.mark.parametrize("config", list(CONFIGS))
def test_compiled_and_eager_steps_give_the_same_losses_and_weights(config):
    eager, eager_losses = train(config)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled, compiled_losses = train(config, compile=AOT_EAGER)
    assert len(compiled_losses) == len(eager_losses) == STEPS
    for step, (a, b) in enumerate(zip(eager_losses, compiled_losses)):
        assert a.keys() == b.keys()
        for name in a:
            assert b[name] == pytest.approx(a[name], rel=1e-5, abs=1e-6), (step, name)
    for (name, a), (_, b) in zip(eager.state_dict().items(), compiled.state_dict().items()):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6, msg=name)
    # What was compiled: both steps, except a discriminator step with a gradient penalty (double backward).
    penalised = config in ("wgan_gp", "hinge_r1")
    assert sorted(compiled._compiled) == (["_generator_outputs"] if penalised else
                                          ["_discriminator_outputs", "_generator_outputs"])
    fallback = [w for w in caught if "runs eagerly" in str(w.message)]
    assert len(fallback) == penalised, [str(w.message) for w in caught]
    assert not eager._compiled


def test_a_compiled_module_still_pickles_copies_and_checkpoints(tmp_path):
    gan, _ = train("non_saturating", compile=AOT_EAGER)
    assert gan._compiled
    assert pickle.loads(pickle.dumps(gan)).hparams.compile == AOT_EAGER
    assert not copy.deepcopy(gan)._compiled  # a copy compiles its own functions, for its own networks
    gan.trainer.save_checkpoint(tmp_path / "c.ckpt")
    reloaded = VanillaGAN.load_from_checkpoint(tmp_path / "c.ckpt")
    assert reloaded.hparams.compile == AOT_EAGER and not reloaded._compiled


@pytest.mark.parametrize("value", ["yes", 1, {"modes": "max-autotune"}, None])
def test_compile_takes_a_bool_or_torch_compile_arguments(value):
    with pytest.raises(ValueError, match=r"`compile` must be True, False or a dict of torch.compile arguments"):
        CONFIGS["non_saturating"](compile=value)


@pytest.mark.skipif(not os.environ.get("LIGHTNING_GAN_SLOW_TESTS"), reason="~1 min on 2 cores; set LIGHTNING_GAN_SLOW_TESTS=1")
def test_the_default_inductor_backend_gives_the_eager_losses():
    _, eager_losses = train("non_saturating")
    _, compiled_losses = train("non_saturating", compile=True)
    for a, b in zip(eager_losses, compiled_losses):
        assert b == pytest.approx(a, rel=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
def test_the_captured_step_on_cuda_gives_the_eager_losses():
    def run(**options):
        pl.seed_everything(0, verbose=False)
        gan = VanillaGAN(**TOY, **options)
        record = StepLosses()
        trainer = pl.Trainer(accelerator="cuda", devices=1, max_steps=STEPS, logger=False, enable_progress_bar=False,
                             enable_checkpointing=False, enable_model_summary=False, callbacks=[record])
        trainer.fit(gan, datamodule=TensorDataModule(DATA, batch_size=64, on_accelerator=True))
        return record.losses

    eager, captured = run(), run(compile={"mode": "reduce-overhead"})
    for a, b in zip(eager, captured):
        assert b == pytest.approx(a, rel=1e-4)

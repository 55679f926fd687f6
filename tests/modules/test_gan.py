"""The GAN LightningModule: the maths of its steps, step counting, hooks, precision and bad input."""

from __future__ import annotations

import math
import warnings

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from conftest import batch_loader, cpu_trainer
from pytorch_lightning.callbacks import ModelCheckpoint
from torch import Tensor, nn

from lightning_gan import DCGAN, GAN, VanillaGAN


class Shift(nn.Module):
    """A fixed "generator": z ~ N(0, 1) -> N(shift, 1). Its one parameter gets a zero gradient."""

    def __init__(self, shift: float) -> None:
        super().__init__()
        self.shift = shift
        self.unused = nn.Parameter(torch.zeros(1))

    def forward(self, z: Tensor) -> Tensor:
        return z + self.shift + 0.0 * self.unused


def small_toy_gan(**kwargs) -> VanillaGAN:
    options = dict(
        image_shape=(2,),
        latent_dim=2,
        generator_hidden=(32,),
        discriminator_hidden=(32,),
        maxout_pieces=1,
        dropout=0.0,
        output_activation="identity",
    )
    options.update(kwargs)
    return VanillaGAN(**options)


class OptimizerStepCounter(pl.Callback):
    def __init__(self) -> None:
        self.steps = {"generator": 0, "discriminator": 0}

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        first = optimizer.param_groups[0]["params"][0]
        owner = "generator" if any(first is p for p in pl_module.generator.parameters()) else "discriminator"
        self.steps[owner] += 1


def test_minimax_discriminator_step_recovers_the_optimal_discriminator():
    """Goodfellow et al. 2014, Prop. 1: D*(x) = pi(x) / (pi(x) + p(x)), and the value is 2 JSD - log 4."""
    discriminator = nn.Sequential(nn.Linear(1, 16), nn.Tanh(), nn.Linear(16, 1), nn.Flatten(0))
    gan = GAN(Shift(1.5), discriminator, latent_dim=1, loss="minimax", lr_d=5e-3)
    data = torch.randn(4096 * 50, 1)
    cpu_trainer(max_steps=500).fit(gan, batch_loader(data, batch_size=4096))

    x = torch.linspace(-2.0, 3.5, 221).unsqueeze(1)
    with torch.no_grad():
        d = torch.sigmoid(discriminator(x))
    pi, p = torch.exp(-x.squeeze() ** 2 / 2), torch.exp(-((x.squeeze() - 1.5) ** 2) / 2)
    assert (d - pi / (pi + p)).abs().max() < 0.05

    grid = torch.linspace(-12.0, 13.5, 20001, dtype=torch.float64)
    dx = float(grid[1] - grid[0])
    pi = torch.exp(-(grid**2) / 2) / math.sqrt(2 * math.pi)
    p = torch.exp(-((grid - 1.5) ** 2) / 2) / math.sqrt(2 * math.pi)
    with torch.no_grad():
        logits = discriminator(grid.float().unsqueeze(1)).double()
    value = ((pi * -F.softplus(-logits) + p * -F.softplus(logits)).sum() * dx).item()
    m = (pi + p) / 2
    jsd = (0.5 * (pi * torch.log(pi / m)).sum() * dx + 0.5 * (p * torch.log(p / m)).sum() * dx).item()
    assert abs(value - (2 * jsd - math.log(4))) < 0.05


@pytest.mark.parametrize("n_critic", [1, 3])
def test_n_critic_discriminator_steps_per_generator_step_and_global_step_counts_generator_steps(n_critic):
    counter = OptimizerStepCounter()
    trainer = cpu_trainer(max_steps=7, callbacks=[counter])
    trainer.fit(small_toy_gan(n_critic=n_critic), batch_loader(torch.randn(576, 2), batch_size=64 * n_critic))  # fresh critic data
    assert counter.steps == {"generator": 7, "discriminator": 7 * n_critic}
    assert trainer.global_step == 7


def test_subclass_overriding_the_losses_trains_both_networks():
    calls = {"d": 0, "g": 0}

    class LeastSquaresGAN(VanillaGAN):
        def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
            calls["d"] += 1
            return 0.5 * ((real_logits - 1) ** 2).mean() + 0.5 * (fake_logits**2).mean()

        def generator_loss(self, fake_logits: Tensor) -> Tensor:
            calls["g"] += 1
            return 0.5 * ((fake_logits - 1) ** 2).mean()

    gan = LeastSquaresGAN(image_shape=(2,), latent_dim=2, generator_hidden=(16,), discriminator_hidden=(16,),
                          maxout_pieces=1, dropout=0.0, output_activation="identity")
    before_g = [p.detach().clone() for p in gan.generator.parameters()]
    before_d = [p.detach().clone() for p in gan.discriminator.parameters()]
    cpu_trainer(max_steps=20).fit(gan, batch_loader(torch.randn(640, 2), batch_size=32))
    assert calls == {"d": 20, "g": 20}
    assert all(not torch.equal(a, b) for a, b in zip(before_g, gan.generator.parameters()))
    assert all(not torch.equal(a, b) for a, b in zip(before_d, gan.discriminator.parameters()))


def test_logs_losses_and_discriminator_outputs_and_penalties():
    gan = small_toy_gan(loss="wasserstein", gp_weight=10.0, r1_gamma=1.0)
    trainer = cpu_trainer(max_steps=3)
    trainer.fit(gan, batch_loader(torch.randn(256, 2), batch_size=32))
    logged = trainer.logged_metrics
    for key in ("train/loss_d", "train/loss_g", "train/d_real", "train/d_fake", "train/gp", "train/r1"):
        assert key in logged and torch.isfinite(logged[key])


def test_d_real_is_a_probability_for_probabilistic_losses():
    trainer = cpu_trainer(max_steps=3)
    trainer.fit(small_toy_gan(loss="minimax"), batch_loader(torch.randn(256, 2) * 50, batch_size=32))
    for key in ("train/d_real", "train/d_fake"):
        assert 0.0 <= trainer.logged_metrics[key] <= 1.0


def test_gradient_clipping_bounds_each_networks_gradient_norm():
    norms = []
    gan = small_toy_gan(gradient_clip_val=1e-3)
    clip = gan.on_before_optimizer_step  # the module clips in this hook (after Lightning unscales under 16-mixed)

    def clip_and_record(optimizer) -> None:
        clip(optimizer)
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        norms.append(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])).item())

    gan.on_before_optimizer_step = clip_and_record
    cpu_trainer(max_steps=3).fit(gan, batch_loader(torch.randn(256, 2) * 100, batch_size=32))
    assert len(norms) == 6 and max(norms) <= 1e-3 * (1 + 1e-4)


def test_ema_generator_is_used_by_generate_and_stored_in_checkpoints(tmp_path):
    gan = small_toy_gan(ema_decay=0.9)
    checkpoint = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    cpu_trainer(max_steps=5, enable_checkpointing=True, callbacks=[checkpoint], default_root_dir=tmp_path).fit(
        gan, batch_loader(torch.randn(320, 2), batch_size=32)
    )
    ema_weights = [p.detach().clone() for p in gan.generator_ema.module.parameters()]
    assert any(not torch.equal(e, p) for e, p in zip(ema_weights, gan.generator.parameters()))

    torch.manual_seed(1)
    from_generate = gan.generate(4)
    torch.manual_seed(1)
    assert torch.equal(from_generate, gan.generator_ema.module(gan.sample_latent(4)))

    restored = VanillaGAN.load_from_checkpoint(checkpoint.last_model_path)
    for restored_p, p in zip(restored.generator_ema.module.parameters(), ema_weights):
        assert torch.equal(restored_p, p)


def test_ema_follows_the_update_rule():
    gan = small_toy_gan(ema_decay=0.75)
    before = [p.detach().clone() for p in gan.generator_ema.module.parameters()]
    with torch.no_grad():
        for p in gan.generator.parameters():
            p.add_(1.0)
    gan.generator_ema.update(gan.generator)
    for b, e, live in zip(before, gan.generator_ema.module.parameters(), gan.generator.parameters()):
        torch.testing.assert_close(e, 0.75 * b + 0.25 * live)


def test_lr_schedulers_step_once_per_generator_step():
    class Scheduled(VanillaGAN):
        def configure_optimizers(self):
            opt_g, opt_d = super().configure_optimizers()
            schedulers = [torch.optim.lr_scheduler.StepLR(o, step_size=1, gamma=0.5) for o in (opt_g, opt_d)]
            return [opt_g, opt_d], [{"scheduler": s, "interval": "step"} for s in schedulers]

    gan = Scheduled(image_shape=(2,), latent_dim=2, generator_hidden=(8,), discriminator_hidden=(8,),
                    maxout_pieces=1, dropout=0.0, output_activation="identity", n_critic=2, lr_g=1.0, lr_d=1.0)
    trainer = cpu_trainer(max_steps=4)
    trainer.fit(gan, batch_loader(torch.randn(256, 2), batch_size=32))
    assert [o.param_groups[0]["lr"] for o in trainer.optimizers] == [0.5**4, 0.5**4]


def test_bf16_mixed_precision_trains_with_finite_losses():
    trainer = cpu_trainer(max_steps=5, precision="bf16-mixed")
    gan = DCGAN(image_shape=(1, 28, 28), latent_dim=8, features=4)
    trainer.fit(gan, batch_loader(torch.rand(80, 1, 28, 28) * 2 - 1, batch_size=16))
    assert trainer.global_step == 5
    for key in ("train/loss_d", "train/loss_g"):
        assert torch.isfinite(trainer.logged_metrics[key])
    assert all(torch.isfinite(p).all() for p in gan.parameters())


def test_validation_logs_discriminator_output_on_held_out_data():
    trainer = cpu_trainer(max_epochs=1, limit_train_batches=2)
    trainer.fit(small_toy_gan(), batch_loader(torch.randn(128, 2), batch_size=32),
                batch_loader(torch.randn(64, 2), batch_size=32, shuffle=False))
    assert 0.0 <= trainer.callback_metrics["val/d_real"] <= 1.0


@pytest.mark.parametrize(
    ("kwargs", "offending"),
    [
        ({"loss": "wassersteinn"}, "wassersteinn"),
        ({"n_critic": 0}, "0"),
        ({"latent_dim": 0}, "0"),
        ({"lr_g": 0.0}, "0.0"),
        ({"lr_d": -1e-3}, "-0.001"),
        ({"ema_decay": 1.0}, "1.0"),
        ({"ema_decay": 0.0}, "0.0"),
        ({"betas": (0.5, 1.5)}, "1.5"),
        ({"gp_weight": -1.0}, "-1.0"),
        ({"gradient_clip_algorithm": "l3"}, "l3"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_value(kwargs, offending):
    options = dict(generator=nn.Linear(2, 2), discriminator=nn.Linear(2, 1), latent_dim=2)
    options.update(kwargs)
    with pytest.raises(ValueError, match=__import__("re").escape(offending)):
        GAN(**options)


def test_unknown_loss_lists_the_known_ones():
    with pytest.raises(ValueError) as error:
        GAN(nn.Linear(2, 2), nn.Linear(2, 1), latent_dim=2, loss="nope")
    for name in ("minimax", "non_saturating", "wasserstein", "hinge", "least_squares"):
        assert name in str(error.value)


def test_generator_output_shape_mismatch_is_reported_before_any_step():
    gan = small_toy_gan()  # generates 2-D points
    counter = OptimizerStepCounter()
    with pytest.raises(ValueError, match=r"\(2,\).*\(3,\)"):
        cpu_trainer(max_steps=2, callbacks=[counter]).fit(gan, batch_loader(torch.randn(64, 3), batch_size=32))
    assert counter.steps == {"generator": 0, "discriminator": 0}


def test_a_wrong_data_shape_with_a_validation_loader_gets_the_package_message_not_a_matmul_error():
    # G and D agree on 4 features, the data has 3: the sanity check reaches D first and used to fail inside it.
    gan = GAN(nn.Linear(2, 4), nn.Sequential(nn.Linear(4, 1), nn.Flatten(0)), latent_dim=2)
    counter = OptimizerStepCounter()
    loader = batch_loader(torch.randn(64, 3), batch_size=32)
    with pytest.raises(ValueError, match=r"generator's samples have shape \(4,\) but the data's have shape \(3,\)"):
        cpu_trainer(max_steps=2, callbacks=[counter]).fit(gan, loader, batch_loader(torch.randn(32, 3), batch_size=16))
    assert counter.steps == {"generator": 0, "discriminator": 0}


def test_plain_ddp_strategy_is_refused_with_the_name_to_use():
    from pytorch_lightning.strategies import DDPStrategy

    trainer = cpu_trainer(max_steps=1, strategy=DDPStrategy(start_method="spawn"), devices=1)
    gan = small_toy_gan()
    gan.trainer = trainer
    with pytest.raises(ValueError, match="gan_ddp"):
        gan.setup("fit")


def test_non_module_networks_raise_type_error():
    with pytest.raises(TypeError, match="generator"):
        GAN("not a net", nn.Linear(2, 1), latent_dim=2)


def test_reduce_lr_on_plateau_is_refused_with_what_to_do_instead():
    class Plateau(VanillaGAN):
        def configure_optimizers(self):
            opt_g, opt_d = super().configure_optimizers()
            plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt_d)
            return [opt_g, opt_d], [{"scheduler": plateau, "monitor": "val/d_real"}]

    gan = Plateau(image_shape=(2,), latent_dim=2, generator_hidden=(8,), discriminator_hidden=(8,),
                  maxout_pieces=1, dropout=0.0, output_activation="identity")
    with pytest.raises(ValueError, match="ReduceLROnPlateau"):
        cpu_trainer(max_steps=1).fit(gan, batch_loader(torch.randn(64, 2), batch_size=32))


def test_generate_leaves_every_buffer_and_mode_of_the_model_unchanged():
    """After fit the module is in train mode; generate() must not update batch-norm statistics (issue #14)."""
    from lightning_gan import DCGAN

    gan = DCGAN(image_shape=(1, 28, 28), latent_dim=8, features=4, ema_decay=0.9)
    gan.train()
    gan.generator.net[1].eval()  # a submodule in its own mode keeps it
    before = {k: v.clone() for k, v in gan.state_dict().items()}
    modes = {name: m.training for name, m in gan.named_modules()}
    torch.manual_seed(0)
    first = gan.generate(16)
    torch.manual_seed(0)
    assert torch.equal(gan.generate(16), first)  # running statistics, not this batch's
    assert all(torch.equal(before[k], v) for k, v in gan.state_dict().items())
    assert {name: m.training for name, m in gan.named_modules()} == modes


def test_a_sigmoid_ended_discriminator_is_warned_about_and_logs_its_true_mean_output():
    """The Lightning tutorial's discriminator ends in a Sigmoid; with a logit loss it used to log sigmoid(prob)."""
    import copy

    discriminator = nn.Sequential(nn.Linear(2, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1), nn.Flatten(0), nn.Sigmoid())
    with pytest.warns(UserWarning, match=r"ends in nn.Sigmoid but loss='non_saturating' takes logits"):
        gan = GAN(nn.Linear(2, 2), discriminator, latent_dim=2)
    before = copy.deepcopy(discriminator)
    data = torch.randn(32, 2)
    cpu_trainer(max_steps=1).fit(gan, batch_loader(data, batch_size=32))
    assert gan.last_step_metrics["d_real"].item() == pytest.approx(before(data).mean().item(), rel=1e-6)
    # An explicit setting wins, and plain logit discriminators are not warned about.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert GAN(nn.Linear(2, 2), nn.Sequential(nn.Linear(2, 1), nn.Flatten(0)), latent_dim=2)._outputs_through_sigmoid
    with pytest.raises(ValueError, match="`discriminator_outputs` must be None or one of"):
        GAN(nn.Linear(2, 2), nn.Sequential(nn.Linear(2, 1), nn.Flatten(0)), latent_dim=2, discriminator_outputs="odds")


class TutorialGAN(GAN):
    """The Lightning "basic GAN" tutorial's constructor ported onto GAN: renamed arguments and **kwargs."""

    def __init__(self, channels: int = 1, width: int = 4, height: int = 4, latent_dim: int = 8, lr: float = 2e-4,
                 b1: float = 0.5, b2: float = 0.999, batch_size: int = 32, **kwargs):
        size = channels * width * height
        generator = nn.Sequential(nn.Linear(latent_dim, size), nn.Tanh(), nn.Unflatten(1, (channels, width, height)))
        discriminator = nn.Sequential(nn.Flatten(), nn.Linear(size, 1), nn.Flatten(0))
        super().__init__(generator, discriminator, latent_dim=latent_dim, lr_g=lr, lr_d=lr, betas=(b1, b2), **kwargs)


def test_a_tutorial_style_subclass_with_renamed_arguments_reloads(tmp_path):
    gan = TutorialGAN(lr=1e-3, b1=0.4, n_critic=2)
    trainer = cpu_trainer(max_steps=2)
    trainer.fit(gan, batch_loader(torch.rand(64, 1, 4, 4) * 2 - 1, batch_size=32))
    trainer.save_checkpoint(tmp_path / "tutorial.ckpt")
    reloaded = TutorialGAN.load_from_checkpoint(tmp_path / "tutorial.ckpt")
    assert (reloaded.hparams.lr_g, reloaded.hparams.betas, reloaded.hparams.n_critic) == (1e-3, (0.4, 0.999), 2)
    assert all(torch.equal(a, b) for a, b in zip(gan.state_dict().values(), reloaded.state_dict().values()))
    assert gan.hparams.lr_g == 1e-3 and gan.hparams.lr == 1e-3  # the module's own hparams keep both, for loggers


def test_a_plain_gan_reloads_when_given_its_networks_and_says_so_when_not(tmp_path):
    def nets():
        return nn.Linear(2, 2), nn.Sequential(nn.Linear(2, 1), nn.Flatten(0))

    generator, discriminator = nets()
    gan = GAN(generator, discriminator, latent_dim=2, lr_d=1e-3)
    trainer = cpu_trainer(max_steps=1)
    trainer.fit(gan, batch_loader(torch.randn(32, 2), batch_size=32))
    trainer.save_checkpoint(tmp_path / "plain.ckpt")
    with pytest.raises(TypeError, match=r"needs the networks.*pass generator=\.\.\. and discriminator=\.\.\."):
        GAN.load_from_checkpoint(tmp_path / "plain.ckpt")
    generator, discriminator = nets()
    reloaded = GAN.load_from_checkpoint(tmp_path / "plain.ckpt", generator=generator, discriminator=discriminator)
    assert reloaded.hparams.lr_d == 1e-3 and torch.equal(reloaded.generator.weight, gan.generator.weight)

"""``critic_data``: each of a generator step's ``n_critic`` critic steps on its own real micro-batch, or all on one.

Algorithm 1 of WGAN-GP (and SNGAN's ``n_dis`` loop) draws a fresh real minibatch for every critic step;
the presets do the same by default. The 2-process ``gan_ddp`` case is in test_sngan.py.
"""

from __future__ import annotations

import logging

import pytest
import torch
from conftest import batch_loader, cpu_trainer

from lightning_gan import WGANGP, ConditionalGAN, VanillaGAN

SAMPLES = torch.rand(100, 1, 28, 28) * 2 - 1  # first pixels are distinct: they name the samples


class RecordingWGANGP(WGANGP):
    def __init__(self, **kwargs) -> None:
        super().__init__(image_shape=(1, 28, 28), latent_dim=4, features=2, **kwargs)
        self.seen: list[list[float]] = []

    def discriminator_step(self, real, optimizer, labels=None):
        self.seen.append(real[:, 0, 0, 0].tolist())
        return super().discriminator_step(real, optimizer)


def test_each_critic_step_of_a_generator_step_sees_its_own_real_samples():
    gan = RecordingWGANGP()
    assert gan.hparams.n_critic == 5 and gan.hparams.critic_data == "fresh"  # the preset's default
    trainer = cpu_trainer(max_epochs=1)
    trainer.fit(gan, batch_loader(SAMPLES, batch_size=20))  # 5 micro-batches of 4 per generator step
    # One epoch of 100 samples is 5 generator steps (25 with critic_data="reused"): n_critic times fewer.
    assert trainer.global_step == 5 and len(gan.seen) == 25
    for step in range(5):
        critic_batches = gan.seen[5 * step:5 * step + 5]
        samples = [value for batch in critic_batches for value in batch]
        assert all(len(batch) == 4 for batch in critic_batches)
        assert len(set(samples)) == 20, f"generator step {step}: two critic steps saw the same real sample"
    every = [value for batch in gan.seen for value in batch]
    assert sorted(every) == sorted(SAMPLES[:, 0, 0, 0].tolist())  # each sample once per epoch


def test_reused_critic_data_is_the_old_behaviour_by_name():
    gan = RecordingWGANGP(critic_data="reused")
    trainer = cpu_trainer(max_epochs=1)
    trainer.fit(gan, batch_loader(SAMPLES, batch_size=20))
    assert trainer.global_step == 5 and len(gan.seen) == 25
    for step in range(5):
        first, *others = gan.seen[5 * step:5 * step + 5]
        assert len(first) == 20 and all(batch == first for batch in others)


def test_conditional_critic_steps_get_the_labels_of_their_own_micro_batch():
    data = torch.randn(96, 2)
    labels = torch.arange(96) % 4
    label_of = {value: int(label) for value, label in zip(data[:, 0].tolist(), labels)}
    seen: list[tuple[list[float], list[int]]] = []

    class Recording(ConditionalGAN):
        def discriminator_step(self, real, optimizer, labels=None):
            seen.append((real[:, 0].tolist(), labels.tolist()))
            return super().discriminator_step(real, optimizer, labels)

        def generator_step(self, batch_size, optimizer, labels=None):
            seen.append(([], labels.tolist()))
            return super().generator_step(batch_size, optimizer, labels)

    gan = Recording(num_classes=4, image_shape=(2,), latent_dim=2, architecture="mlp", generator_hidden=(8,),
                    discriminator_hidden=(8,), output_activation="identity", n_critic=3, steps_per_batch=2)
    cpu_trainer(max_steps=4).fit(gan, batch_loader(data, labels, batch_size=24))  # 2 steps x 3 micro-batches of 4
    assert len(seen) == 4 * 4
    for step in range(4):
        critic, (_, generator_labels) = seen[4 * step:4 * step + 3], seen[4 * step + 3]
        assert len({value for real, _ in critic for value in real}) == 12
        for real, micro_labels in critic:
            assert micro_labels == [label_of[value] for value in real]  # each micro-batch its own labels
        assert generator_labels == critic[-1][1]  # the generator step generates for its last micro-batch's classes


def test_a_batch_that_does_not_split_into_critic_micro_batches_is_refused():
    with pytest.raises(ValueError, match=r"Batch 0 holds 16 samples, which cannot be split into 5 equal micro-batches "
                                         r"\(steps_per_batch=1 x 5 real micro-batch\(es\) per generator step, "
                                         r"critic_data='fresh', n_critic=5\); give the loader a batch size that is a "
                                         r"multiple of 5"):
        cpu_trainer(max_steps=1).fit(RecordingWGANGP(), batch_loader(SAMPLES, batch_size=16))


@pytest.mark.parametrize("value", ["new", None, True])
def test_critic_data_must_be_fresh_or_reused(value):
    with pytest.raises(ValueError, match=r"`critic_data` must be one of 'fresh', 'reused', got"):
        VanillaGAN(image_shape=(2,), critic_data=value)


def test_fit_says_how_many_generator_steps_an_epoch_is(caplog):
    with caplog.at_level(logging.INFO):
        cpu_trainer(max_steps=1).fit(RecordingWGANGP(), batch_loader(SAMPLES, batch_size=20))
    assert ("Each loader batch is 5 micro-batches: 1 generator step(s), each after n_critic=5 critic steps on 5 fresh "
            "real micro-batches (critic_data='fresh'). An epoch of 5 batches is 5 generator steps.") in caplog.text


def test_the_package_data_modules_batch_size_is_the_samples_of_one_critic_step():
    from lightning_gan.data import TensorDataModule

    gan = RecordingWGANGP()
    trainer = cpu_trainer(max_steps=2)
    trainer.fit(gan, datamodule=TensorDataModule(SAMPLES, batch_size=4))  # serves 5 x 4 per loader batch
    assert gan.micro_batches_per_batch == 5 and len(gan.seen) == 10
    assert all(len(batch) == 4 for batch in gan.seen)
    assert len({value for batch in gan.seen[:5] for value in batch}) == 20

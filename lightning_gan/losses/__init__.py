r"""Losses, penalties and constraints for GAN training.

Three kinds, one submodule each, all re-exported here: the adversarial losses and their registry by name
(:mod:`~lightning_gan.losses.adversarial`), the discriminator's regularisers, i.e. the WGAN-GP, R1 and
DRAGAN gradient penalties and WGAN's weight clipping (:mod:`~lightning_gan.losses.penalties`), and the
losses on a discriminator's features and auxiliary heads, i.e. feature matching, AC-GAN's class loss and
InfoGAN's code losses (:mod:`~lightning_gan.losses.auxiliary`).

Every loss is a pure function of discriminator outputs (or of its heads) returning a scalar to *minimise*.

Example:
    >>> import torch
    >>> from lightning_gan import losses
    >>> losses.get_loss("hinge").generator(torch.tensor([-2.0, 0.0]))
    tensor(1.)
"""

from .adversarial import (
    LOSSES,
    AdversarialLoss,
    get_loss,
    hinge,
    hinge_discriminator_loss,
    hinge_generator_loss,
    least_squares,
    least_squares_discriminator_loss,
    least_squares_generator_loss,
    minimax,
    minimax_discriminator_loss,
    minimax_generator_loss,
    non_saturating,
    non_saturating_discriminator_loss,
    non_saturating_generator_loss,
    wasserstein,
    wasserstein_discriminator_loss,
    wasserstein_generator_loss,
)
from .auxiliary import (
    auxiliary_classifier_loss,
    categorical_code_loss,
    categorical_mutual_information_bound,
    feature_matching_loss,
    gaussian_code_loss,
)
from .penalties import clip_weights_, dragan_penalty, gradient_penalty, r1_penalty

__all__ = [
    "AdversarialLoss",
    "LOSSES",
    "get_loss",
    "hinge",
    "hinge_discriminator_loss",
    "hinge_generator_loss",
    "least_squares",
    "least_squares_discriminator_loss",
    "least_squares_generator_loss",
    "minimax",
    "minimax_discriminator_loss",
    "minimax_generator_loss",
    "non_saturating",
    "non_saturating_discriminator_loss",
    "non_saturating_generator_loss",
    "wasserstein",
    "wasserstein_discriminator_loss",
    "wasserstein_generator_loss",
    "gradient_penalty",
    "r1_penalty",
    "dragan_penalty",
    "clip_weights_",
    "feature_matching_loss",
    "auxiliary_classifier_loss",
    "categorical_code_loss",
    "categorical_mutual_information_bound",
    "gaussian_code_loss",
]

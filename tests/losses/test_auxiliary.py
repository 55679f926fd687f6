"""Feature matching, AC-GAN's class loss and InfoGAN's code losses against NumPy references of the papers' formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lightning_gan.losses import (
    auxiliary_classifier_loss,
    categorical_code_loss,
    categorical_mutual_information_bound,
    feature_matching_loss,
    gaussian_code_loss,
)

TOL = 1e-6
rng = np.random.default_rng(1)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def test_feature_matching_is_the_squared_distance_of_the_feature_means():
    real, fake = rng.normal(size=(7, 3, 2)), rng.normal(size=(5, 3, 2))
    distance = real.reshape(7, -1).mean(0) - fake.reshape(5, -1).mean(0)
    paper = np.sum(distance**2)  # ||E f(x) - E f(G(z))||_2^2
    assert abs(feature_matching_loss(torch.tensor(real), torch.tensor(fake), reduction="sum").item() - paper) < TOL
    assert abs(feature_matching_loss(torch.tensor(real), torch.tensor(fake)).item() - paper / 6) < TOL  # the code's mean
    with pytest.raises(ValueError, match="same shape per sample"):
        feature_matching_loss(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="`reduction` must be one of"):
        feature_matching_loss(torch.zeros(2, 3), torch.zeros(2, 3), reduction="max")


def test_feature_matching_gradient_reaches_the_fake_features():
    real, fake = torch.randn(4, 3), torch.randn(4, 3, requires_grad=True)
    feature_matching_loss(real, fake, reduction="sum").backward()
    expected = -2 * (real.mean(0) - fake.detach().mean(0)) / 4  # d/dfake_i of ||m_r - m_f||^2
    assert torch.allclose(fake.grad, expected.expand(4, 3), atol=TOL)


def test_class_and_categorical_code_losses_are_the_negative_log_likelihood():
    logits, labels = rng.normal(size=(6, 5)), rng.integers(0, 5, size=6)
    nll = -np.mean(_log_softmax(logits)[np.arange(6), labels])
    for loss in (auxiliary_classifier_loss, categorical_code_loss):
        assert abs(loss(torch.tensor(logits), torch.tensor(labels)).item() - nll) < TOL
    bound = categorical_mutual_information_bound(torch.tensor(logits), torch.tensor(labels)).item()
    assert abs(bound - (math.log(5) - nll)) < TOL  # H(c) + E log Q(c|x), H(c) = log K for a uniform code


def test_the_mutual_information_bound_reaches_log_k_only_when_q_recovers_the_code():
    codes = torch.arange(8)
    perfect = torch.nn.functional.one_hot(codes, 8).double() * 100
    assert abs(categorical_mutual_information_bound(perfect, codes).item() - math.log(8)) < TOL
    assert abs(categorical_mutual_information_bound(torch.zeros(8, 8), codes).item()) < TOL  # Q knows nothing: 0


def test_gaussian_code_loss_is_the_factored_gaussian_negative_log_likelihood():
    mean, codes = rng.normal(size=(5, 3)), rng.uniform(-1, 1, size=(5, 3))
    for std in (1.0, 0.5):
        nll = np.mean(np.sum(0.5 * ((codes - mean) / std) ** 2 + np.log(std) + 0.5 * np.log(2 * np.pi), axis=1))
        assert abs(gaussian_code_loss(torch.tensor(mean), torch.tensor(codes), std=std).item() - nll) < TOL
    with pytest.raises(ValueError, match="same shape"):
        gaussian_code_loss(torch.zeros(2, 3), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="`std` must be a finite positive number"):
        gaussian_code_loss(torch.zeros(2, 3), torch.zeros(2, 3), std=0.0)

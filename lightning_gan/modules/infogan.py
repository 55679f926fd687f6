"""InfoGAN: latent codes whose mutual information with the samples is maximised (Chen et al. 2016)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Optional, Union

import torch
import torch.nn.functional as F
from pytorch_lightning.core.optimizer import LightningOptimizer
from torch import Tensor
from typing_extensions import override

from lightning_gan.losses import categorical_code_loss, gaussian_code_loss
from lightning_gan.modules._architectures import check_architecture, discriminator_body_for, generator_for
from lightning_gan.modules.gan import GAN
from lightning_gan.modules.presets import training_options
from lightning_gan.nets.heads import AuxiliaryHeads

__all__ = ["InfoGAN"]


class InfoGAN(GAN):
    r"""InfoGAN (Chen et al. 2016): structured latent codes that the samples must reveal.

    The latent is ``[noise, one-hot categorical codes, continuous codes]``: ``noise_dim`` standard normal
    values, one uniformly drawn category per entry of ``categorical_codes`` (one-hot), and
    ``continuous_codes`` values uniform in ``[-1, 1]``. A Q head on the discriminator's body
    (:class:`~lightning_gan.nets.AuxiliaryHeads`) predicts the codes from a sample, and both networks
    minimise ``info_weight`` times the negative log-likelihood of the codes under Q: a categorical
    cross-entropy per categorical code and a Gaussian of fixed std 1 for the continuous ones. That
    maximises the variational lower bound :math:`L_I(G, Q) = H(c) + \mathbb{E}[\log Q(c \mid G(z, c))]
    \le I(c; G(z, c))`; as in the authors' code, the Q head trains with the discriminator's optimizer on
    the discriminator step's samples, and the generator trains through it on its own.

    Logged: ``train/q_cat<i>`` / ``train/q_cont`` (the discriminator step's code losses),
    ``train/info_cat<i>`` / ``train/info_cont`` (the generator step's) and ``train/mi_cat<i>``, the bound
    :math:`\log K - \mathrm{CE}` on :math:`I(c_i; x)` for categorical code ``i`` of ``K`` values, in nats
    (at most :math:`\log K`).

    Defaults are the paper's MNIST settings: 62 noise values, one categorical code of 10 and two
    continuous codes, :math:`\lambda = 1` (the authors' ``info_reg_coeff``), Adam with lr 2e-4 for the
    discriminator and 1e-3 for the generator, betas (0.5, 0.999), and a Q head with one hidden layer of
    128 units (LeakyReLU; the paper's also has batch norm).

    Args:
        image_shape: ``(channels, size, size)`` for ``"dcgan"``; any shape, e.g. ``(2,)``, for ``"mlp"``.
        noise_dim: Size of the incompressible noise.
        categorical_codes: Number of categories of each categorical code, e.g. ``(10,)``; may be empty.
        continuous_codes: Number of continuous codes.
        architecture: ``"dcgan"`` or ``"mlp"`` (LeakyReLU MLPs without dropout).
        features: Base width of the DCGAN nets.
        discriminator_normalization: The DCGAN discriminator's ``normalization``.
        generator_hidden: Hidden widths of the MLP generator.
        discriminator_hidden: Hidden widths of the MLP discriminator.
        output_activation: The MLP generator's output: ``"tanh"``, ``"sigmoid"`` or ``"identity"``.
        q_hidden: Width of the Q head's hidden layer (0: a single linear layer).
        info_weight: :math:`\lambda`, the weight of the code losses.
        loss, lr_g, lr_d, betas, n_critic, gp_weight, r1_gamma, ema_decay, gradient_clip_val, gradient_clip_algorithm, steps_per_batch, compile, critic_data, n_gen, dragan_weight, weight_clip, lr_decay: As in
            :class:`~lightning_gan.GAN`.

    Example:
        >>> gan = InfoGAN(image_shape=(2,), noise_dim=2, categorical_codes=(8,), continuous_codes=1,
        ...               architecture="mlp", generator_hidden=(16,), discriminator_hidden=(16,),
        ...               output_activation="identity", q_hidden=0)
        >>> gan.sample_latent(3).shape  # 2 noise + 8 one-hot + 1 continuous
        torch.Size([3, 11])
        >>> gan.generate(3, z=gan.latent_with_codes(3, categories=[[0, 4, 7]])).shape
        torch.Size([3, 2])
    """

    def __init__(
        self,
        image_shape: Sequence[int] = (1, 28, 28),
        noise_dim: int = 62,
        categorical_codes: Sequence[int] = (10,),
        continuous_codes: int = 2,
        architecture: str = "dcgan",
        features: int = 64,
        discriminator_normalization: str = "batch",
        generator_hidden: Sequence[int] = (256, 256),
        discriminator_hidden: Sequence[int] = (256, 256),
        output_activation: str = "tanh",
        q_hidden: int = 128,
        info_weight: float = 1.0,
        loss: str = "non_saturating",
        lr_g: float = 1e-3,
        lr_d: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        n_critic: int = 1,
        gp_weight: float = 0.0,
        r1_gamma: float = 0.0,
        ema_decay: Optional[float] = None,
        gradient_clip_val: Optional[float] = None,
        gradient_clip_algorithm: str = "norm",
        steps_per_batch: int = 1,
        compile: Union[bool, dict[str, Any]] = False,
        critic_data: str = "fresh",
        n_gen: int = 1,
        dragan_weight: float = 0.0,
        weight_clip: Optional[float] = None,
        lr_decay: str = "none",
    ) -> None:
        check_architecture(architecture)
        categorical = tuple(categorical_codes) if isinstance(categorical_codes, Sequence) else categorical_codes
        if not isinstance(categorical, tuple) or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 2 for k in categorical):
            raise ValueError(f"`categorical_codes` must be a sequence of category counts >= 2, got {categorical_codes!r}.")
        if isinstance(continuous_codes, bool) or not isinstance(continuous_codes, int) or continuous_codes < 0:
            raise ValueError(f"`continuous_codes` must be an integer >= 0, got {continuous_codes!r}.")
        if not categorical and not continuous_codes:
            raise ValueError("InfoGAN needs at least one code: give `categorical_codes` or `continuous_codes`.")
        if isinstance(noise_dim, bool) or not isinstance(noise_dim, int) or noise_dim < 1:
            raise ValueError(f"`noise_dim` must be an integer >= 1, got {noise_dim!r}.")
        if isinstance(info_weight, bool) or not isinstance(info_weight, (int, float)) or not 0 < info_weight < float("inf"):
            raise ValueError(f"`info_weight` must be a finite positive number, got {info_weight!r}.")
        latent_dim = noise_dim + sum(categorical) + continuous_codes
        heads = {f"cat{i}": k for i, k in enumerate(categorical)}
        if continuous_codes:
            heads["cont"] = continuous_codes
        body = discriminator_body_for(architecture, image_shape, features, discriminator_hidden, discriminator_normalization)
        super().__init__(
            generator=generator_for(architecture, latent_dim, image_shape, features, generator_hidden, output_activation),
            discriminator=AuxiliaryHeads(body, heads, hidden=q_hidden),
            **training_options(locals()),
        )
        self._categorical = categorical

    @override
    def sample_latent(self, n: int) -> Tensor:
        """``[noise, one-hot categorical codes, continuous codes]`` for ``n`` samples, all codes drawn at random."""
        return self.latent_with_codes(n)

    def latent_with_codes(
        self, n: int, categories: Optional[Sequence[Sequence[int]] | Tensor] = None, continuous: Optional[Tensor] = None
    ) -> Tensor:
        """Latents with chosen codes (e.g. to sweep one code while the others stay fixed); random where not given.

        Args:
            n: Number of latents.
            categories: One row of ``n`` category indices per categorical code (shape ``(num_codes, n)``).
            continuous: Continuous codes, shape ``(n, continuous_codes)``.
        """
        hp = self.hparams
        noise = torch.randn(n, hp.noise_dim, device=self.device)
        parts = [noise]
        for i, k in enumerate(self._categorical):
            index = torch.randint(k, (n,), device=self.device) if categories is None else torch.as_tensor(categories[i], device=self.device)
            parts.append(F.one_hot(index, k).to(noise.dtype))
        if hp.continuous_codes:
            codes = torch.rand(n, hp.continuous_codes, device=self.device) * 2 - 1 if continuous is None else continuous.to(noise)
            parts.append(codes)
        return torch.cat(parts, dim=1)

    def _code_losses(self, heads: dict[str, Tensor], z: Tensor, prefix: str) -> dict[str, Tensor]:
        weight, offset = self.hparams.info_weight, self.hparams.noise_dim
        terms = {}
        for i, k in enumerate(self._categorical):
            codes = z[:, offset : offset + k].argmax(dim=1)
            terms[f"{prefix}_cat{i}"] = weight * categorical_code_loss(heads[f"cat{i}"], codes)
            offset += k
        if self.hparams.continuous_codes:
            terms[f"{prefix}_cont"] = weight * gaussian_code_loss(heads["cont"], z[:, offset:])
        return terms

    @override
    def discriminator_auxiliary_losses(
        self,
        real_heads: Optional[dict[str, Tensor]],
        fake_heads: Optional[dict[str, Tensor]],
        z: Tensor,
        labels: Optional[Tensor] = None,
    ) -> dict[str, Tensor]:
        """Trains the Q head (and the shared body) to recover the codes of the step's generated samples."""
        return self._code_losses(fake_heads, z, "q")

    @override
    def generator_auxiliary_losses(
        self,
        fake_heads: Optional[dict[str, Tensor]],
        z: Tensor,
        labels: Optional[Tensor] = None,
        real: Optional[Tensor] = None,
    ) -> dict[str, Tensor]:
        """Trains the generator to make its codes recoverable by Q."""
        return self._code_losses(fake_heads, z, "info")

    @override
    def generator_step(
        self, batch_size: int, optimizer: LightningOptimizer, labels: Optional[Tensor] = None
    ) -> dict[str, Tensor]:
        """The generator step, plus the mutual-information bound of each categorical code (``mi_cat<i>``)."""
        metrics = super().generator_step(batch_size, optimizer, *(() if labels is None else (labels,)))
        for i, k in enumerate(self._categorical):
            metrics[f"mi_cat{i}"] = math.log(k) - metrics[f"info_cat{i}"] / self.hparams.info_weight
        return metrics

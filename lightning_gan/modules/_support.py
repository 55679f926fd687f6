"""The GAN module's helpers: argument and checkpoint checks, RNG states, and the data checks (a mixin)."""

from __future__ import annotations

import math
import random
import warnings
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np
import torch
from torch import Tensor, nn

from lightning_gan.nets.conditioning import check_num_classes

_CLIP_ALGORITHMS = ("norm", "value")


def _last_layer(net: nn.Module) -> Optional[nn.Module]:
    leaves = [m for m in net.modules() if not list(m.children())]
    return leaves[-1] if leaves else None


def _output_range(net: nn.Module) -> Optional[tuple[float, float]]:
    """The range of a generator whose last layer is a bounded activation; ``None`` when unknown."""
    last = _last_layer(net)
    if isinstance(last, nn.Tanh):
        return (-1.0, 1.0)
    if isinstance(last, nn.Sigmoid):
        return (0.0, 1.0)
    return None


def _non_finite_entries(state_dict: dict[str, Any]) -> list[str]:
    """Names of the floating-point tensors of ``state_dict`` that hold NaN or infinity."""
    names = [k for k, v in state_dict.items() if isinstance(v, Tensor) and v.is_floating_point() and v.numel()]
    if not names:
        return []
    # One reduction per tensor on its device, one host transfer for all of them.
    flags = [torch.isfinite(state_dict[k]).all() for k in names]
    if len({f.device for f in flags}) > 1:
        flags = [f.cpu() for f in flags]
    finite = torch.stack(flags)
    return [k for k, ok in zip(names, finite.tolist()) if not ok]


def _rng_states() -> dict[str, Any]:
    # Tensors and plain Python values only, so checkpoints still load with `torch.load(weights_only=True)`.
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": (name, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(cached_gaussian)),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _restore_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    name, keys, position, has_gauss, cached_gaussian = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached_gaussian))
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


def _warn_on_changed_hyperparameters(module: Any, checkpoint: dict[str, Any]) -> None:
    """Warns when a resumed run's module was built with other hyper-parameters than the checkpoint's."""
    saved = checkpoint.get("hyper_parameters")
    trainer = getattr(module, "_trainer", None)
    if not isinstance(saved, dict) or trainer is None or not trainer.training:
        return  # load_from_checkpoint builds the module from these very values
    current = dict(module.hparams)
    changed = [
        f"{key}: {saved[key]!r} -> {current[key]!r}"
        for key in sorted(set(saved) & set(current))
        if _comparable(saved[key]) != _comparable(current[key])
    ]
    if changed:
        warnings.warn(
            "Resuming a checkpoint into a module built with other hyper-parameters (" + "; ".join(changed) + "): "
            "training goes on with the new values; the weights and optimizer states are the checkpoint's.",
            UserWarning,
            stacklevel=3,
        )


def _comparable(value: Any) -> Any:
    return tuple(value) if isinstance(value, (list, tuple)) else value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _validate_arguments(
    *,
    generator: Any,
    discriminator: Any,
    latent_dim: Any,
    lr_g: Any,
    lr_d: Any,
    betas: Any,
    n_critic: Any,
    gp_weight: Any,
    r1_gamma: Any,
    ema_decay: Any,
    gradient_clip_val: Any,
    gradient_clip_algorithm: Any,
    num_classes: Any,
) -> None:
    for name, net in (("generator", generator), ("discriminator", discriminator)):
        if not isinstance(net, nn.Module):
            raise TypeError(f"`{name}` must be a torch.nn.Module, got {type(net).__name__}.")
    try:
        num_classes = check_num_classes(num_classes)
    except (TypeError, ValueError) as error:
        raise ValueError(f"`num_classes` must be None (unconditional) or an integer >= 2, got {num_classes!r}.") from error
    for name, net in (("generator", generator), ("discriminator", discriminator)):
        # Nets of this package say whether they are conditional; a mismatch would fail only at the first step.
        net_classes = getattr(net, "num_classes", num_classes)
        if net_classes != num_classes:
            raise ValueError(
                f"`num_classes` is {num_classes!r} but the {name} was built with num_classes={net_classes!r}; "
                "build both networks with the GAN's num_classes."
            )
    for name, value in (("latent_dim", latent_dim), ("n_critic", n_critic)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be an integer >= 1, got {value!r}.")
    for name, value in (("lr_g", lr_g), ("lr_d", lr_d)):
        if not _is_number(value) or not 0 < value < math.inf:
            raise ValueError(f"`{name}` must be a finite positive learning rate, got {value!r}.")
    if not isinstance(betas, Sequence) or len(betas) != 2 or not all(_is_number(b) and 0.0 <= b < 1.0 for b in betas):
        raise ValueError(f"`betas` must be two numbers in [0, 1), got {betas!r}.")
    for name, value in (("gp_weight", gp_weight), ("r1_gamma", r1_gamma)):
        # `not 0 <= value < inf` also refuses NaN, which `value < 0` would let through (turning the penalty off).
        if not _is_number(value) or not 0 <= value < math.inf:
            raise ValueError(f"`{name}` must be a finite number >= 0, got {value!r}.")
    if ema_decay is not None and not (_is_number(ema_decay) and 0.0 < ema_decay < 1.0):
        raise ValueError(f"`ema_decay` must be None or in the open interval (0, 1), got {ema_decay!r}.")
    if gradient_clip_val is not None and not (_is_number(gradient_clip_val) and 0 < gradient_clip_val < math.inf):
        raise ValueError(f"`gradient_clip_val` must be None or a finite positive number, got {gradient_clip_val!r}.")
    if gradient_clip_algorithm not in _CLIP_ALGORITHMS:
        raise ValueError(
            f"`gradient_clip_algorithm` must be one of {', '.join(map(repr, _CLIP_ALGORITHMS))}, "
            f"got {gradient_clip_algorithm!r}."
        )


class _BatchChecks:
    """The GAN module's checks of its training data: labels in range, samples finite, shapes and range.

    The first batch is checked at once (one host sync); later batches on the device, their first bad
    batch read where the step syncs anyway (a logging step, the epoch's end), so no check adds a host
    sync per step. A mixin of :class:`~lightning_gan.GAN`, kept apart so the step reads on one screen.
    """

    num_classes: Optional[int]
    generator: nn.Module
    labels_from_batch: Any
    _labels_checked: bool
    _bad_batches: Optional[Tensor]
    _output_shape_checked: bool
    _data_range_checked: bool

    def _checked_labels(self, batch: Any, batch_size: int, batch_idx: int = -1) -> Optional[Tensor]:
        labels = self.labels_from_batch(batch)
        if labels is None:
            return None
        where = f"The labels of batch {batch_idx}" if batch_idx >= 0 else "The batch's labels"
        if not self._labels_checked or not self._defer_label_check(labels):
            # The first batch, and every batch on the CPU (where reading a value costs no device sync).
            self._check_label_values(labels, where, expected_len=batch_size)
            self._labels_checked = True
            return labels
        # Later batches on an accelerator: shape and dtype are metadata (free); the values are checked on the
        # device without a sync. A bad label is clamped, so that the embedding cannot raise a device-side
        # assert, and the first bad batch is reported at the next logging step (_raise_on_bad_batches).
        if labels.is_floating_point() or labels.dtype == torch.bool or labels.shape != (batch_size,):
            self._check_label_values(labels, where, expected_len=batch_size)
        self._flag_bad_batch(0, ((labels < 0) | (labels >= self.num_classes)).any(), batch_idx)
        return labels.clamp(0, self.num_classes - 1)

    def _flag_bad_batch(self, kind: int, bad: Tensor, batch_idx: int) -> None:
        """Records ``batch_idx`` as the first bad batch of ``kind`` (0 labels, 1 non-finite) if ``bad``; no sync."""
        if self._bad_batches is None or self._bad_batches.device != bad.device:
            self._bad_batches = torch.full((2,), -1, dtype=torch.long, device=bad.device)
        first = self._bad_batches[kind]
        self._bad_batches[kind] = torch.where(bad & (first < 0), torch.full_like(first, batch_idx), first)

    def _check_real(self, real: Tensor, batch_idx: int) -> None:
        """Non-finite samples: refused on the first batch at once, on later ones at the next logging step."""
        if not real.is_floating_point():
            return
        finite = _all_finite(real)
        if self._bad_batches is None:  # the first training batch: one host sync, once
            if not bool(finite):
                bad = int((~torch.isfinite(real.reshape(real.shape[0], -1)).all(dim=1)).sum())
                raise ValueError(
                    f"Batch {batch_idx} of the training data holds NaN or infinite values ({bad} of its {real.shape[0]} "
                    "samples): a GAN trained on them learns NaN weights. Clean the data (or its transform)."
                )
            self._flag_bad_batch(1, ~finite, batch_idx)
            return
        self._flag_bad_batch(1, ~finite, batch_idx)

    def _defer_label_check(self, labels: Tensor) -> bool:
        """Whether to check label values on the device and report later (accelerators) or now (CPU)."""
        return labels.device.type != "cpu"

    def _raise_on_bad_batches(self) -> None:
        if self._bad_batches is None:
            return
        labels, nonfinite = self._bad_batches.tolist()  # one host sync, on a step that syncs to log anyway
        if labels >= 0:
            raise ValueError(
                f"The labels of batch {labels} lie outside [0, {self.num_classes}) (num_classes={self.num_classes}); "
                "the steps since then trained on clamped labels. Fix the data's labels or `num_classes`."
            )
        if nonfinite >= 0:
            raise ValueError(
                f"Batch {nonfinite} of the training data holds NaN or infinite values; the steps since then may have "
                "made the weights non-finite (checkpoints refuse them). Clean the data (or its transform)."
            )

    def _check_label_values(self, labels: Tensor, what: str, expected_len: int) -> None:
        # Once per run (a host sync): an out-of-range label would otherwise fail deep in an embedding, and
        # on a GPU as an unreadable device-side assert.
        if labels.is_floating_point() or labels.dtype == torch.bool or labels.shape != (expected_len,):
            raise ValueError(
                f"{what} must be {expected_len} integer class indices, shape ({expected_len},); got dtype "
                f"{labels.dtype} and shape {tuple(labels.shape)}."
            )
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise ValueError(
                f"{what} must lie in [0, {self.num_classes}) (num_classes={self.num_classes}); got values from "
                f"{int(labels.min())} to {int(labels.max())}."
            )

    def _check_output_shape(self, real: Tensor, fake: Tensor) -> None:
        if tuple(fake.shape[1:]) != tuple(real.shape[1:]):
            raise ValueError(
                f"The generator's samples have shape {tuple(fake.shape[1:])} but the data's have shape "
                f"{tuple(real.shape[1:])} (per sample); make the generator's output shape match the data."
            )
        self._output_shape_checked = True
        if not self._data_range_checked and real.is_floating_point() and real.numel():
            # Once (a host sync on the first step): data in [0, 255] against a tanh generator train a
            # discriminator that tells them apart by scale alone, silently.
            self._data_range_checked = True
            bounds = _output_range(self.generator)
            if bounds is not None:
                low, high = (float(v) for v in torch.aminmax(real.detach().float()))
                width = bounds[1] - bounds[0]
                if low < bounds[0] - width or high > bounds[1] + width:
                    warnings.warn(
                        f"The real samples span [{low:.4g}, {high:.4g}], far outside the generator's output range "
                        f"[{bounds[0]:g}, {bounds[1]:g}] (its last layer is a {type(_last_layer(self.generator)).__name__}): "
                        "scale the data to that range (lightning_gan.data.uint8_to_signed_unit maps uint8 pixels to "
                        "[-1, 1]) or change the generator's output activation.",
                        UserWarning,
                        stacklevel=2,
                    )


def _all_finite(x: Tensor) -> Tensor:
    """Whether every element of ``x`` is finite, as a 0-d bool tensor (no host sync).

    ``isfinite(x).all()`` takes several passes over the batch (2 ms of a 140 ms DCGAN-64 step on one CPU
    thread); ``aminmax`` takes one (0.1 ms): an infinite element is the minimum or the maximum, and NaN
    propagates to both.
    """
    low, high = torch.aminmax(x)
    return torch.isfinite(low) & torch.isfinite(high)

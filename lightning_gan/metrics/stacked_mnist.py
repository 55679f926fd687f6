r"""Mode counting on Stacked MNIST (:class:`~lightning_gan.data.StackedMNISTDataModule`): 1,000 modes.

The protocol of Metz et al. (2017, Unrolled GANs), VEEGAN (Srivastava et al., 2017, Table 2) and PacGAN
(Lin et al., 2018, Tables 2 and 3):

1. train a digit classifier on MNIST (:func:`train_digit_classifier`) and **report its accuracy** on held-out
   digits beside the counts, as the counts are only as good as the classifier;
2. draw **26,000** samples from the generator;
3. classify each of the three channels of every sample; the three digits give its mode
   :math:`m = 100 d_R + 10 d_G + d_B \in \{0, \dots, 999\}`;
4. with :math:`c_m` the number of samples in mode :math:`m`, :math:`N = \sum_m c_m` and
   :math:`p_m = c_m / N`, report

   * ``modes_covered``: :math:`\#\{m : c_m \ge 1\}`, out of 1,000;
   * ``reverse_kl``: :math:`\mathrm{KL}(p \,\Vert\, u) = \sum_m p_m \log(1000\, p_m)` in nats, from the
     samples' mode histogram to the uniform distribution of the data (:math:`0 \log 0 = 0`): 0 when the
     samples spread evenly over all modes, :math:`\log 1000 \approx 6.91` when they all fall in one.

   (PacGAN's code computes exactly this: ``KLD(p, q)`` with ``q`` uniform over 1,000 modes.)

:func:`stacked_mnist_modes` does steps 3 and 4 on a tensor of samples; :class:`StackedMNISTModes` is the
same as a ``torchmetrics.Metric`` whose state (the 1,000-bin histogram) is summed across processes, so under
DDP each process classifies its own samples and the result equals the single-process one.
"""

from __future__ import annotations

import math
from typing import Any, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import Metric

__all__ = [
    "DigitClassifier",
    "StackedMNISTModes",
    "mode_statistics",
    "predict_modes",
    "stacked_mnist_modes",
    "train_digit_classifier",
]

NUM_MODES = 1000
_PLACE_VALUES = (100, 10, 1)


class DigitClassifier(nn.Module):
    """A small CNN for MNIST digits (2 convolutions + 2 linear layers), input ``(N, 1, 28, 28)`` in ``[-1, 1]``.

    About 1.1 M multiply-adds per digit, so that classifying the 78,000 channels of 26,000 samples takes
    about 25 s on one CPU thread; trained on 9,000 MNIST test digits by :func:`train_digit_classifier` it
    reached 97.6% on the other 1,000. Returns logits ``(N, 10)``.

    Attributes:
        image_size: The height and width it was built for (28); :func:`stacked_mnist_modes` resizes other
            samples to it.

    Example:
        >>> DigitClassifier()(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    image_size = 28

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(2 * width * 7 * 7, 64), nn.ReLU(),
            nn.Linear(64, 10),
        )

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images)


def train_digit_classifier(
    images: Tensor,
    labels: Tensor,
    held_out: float = 0.1,
    epochs: int = 5,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    device: Union[str, torch.device, None] = None,
) -> tuple[DigitClassifier, float]:
    """Trains a :class:`DigitClassifier` on MNIST digits and measures it on a held-out part of them.

    A permutation seeded with ``seed`` sets the last ``held_out`` fraction of the digits apart; the rest train
    the classifier with Adam for ``epochs`` epochs, shuffled by the same seed; the initial weights are drawn
    from ``seed`` too (torch's global generator is left as it was). On the 10,000 MNIST test digits (9,000
    to train, 1,000 held out) the defaults took 13 s on one CPU thread and reached 97.6%.

    Args:
        images: Digits ``(N, 1, 28, 28)`` or ``(N, 28, 28)``: uint8 in ``[0, 255]`` or floats in ``[-1, 1]``
            (a data module's batches).
        labels: Their digits ``(N,)`` in ``0..9``.
        held_out: Fraction of the digits kept for the accuracy, in ``(0, 1)``.
        epochs: Passes over the training digits.
        batch_size: Digits per optimizer step.
        lr: Adam's learning rate.
        seed: Seeds the split, the initial weights and the shuffling.
        device: Where to train (default: the images' device).

    Returns:
        ``(classifier, accuracy)``: the classifier in eval mode, and its accuracy on the held-out digits.

    Raises:
        ValueError: If the shapes disagree, ``held_out`` is not in ``(0, 1)``, ``epochs``/``batch_size`` is not
            an integer ``>= 1``, or either part would be empty.
    """
    x = _as_digits(images)
    if labels.shape != (len(x),):
        raise ValueError(f"`labels` must have shape ({len(x)},) like `images`, got {tuple(labels.shape)}.")
    if isinstance(held_out, bool) or not isinstance(held_out, (int, float)) or not 0 < held_out < 1:
        raise ValueError(f"`held_out` must be a fraction in (0, 1), got {held_out!r}.")
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be an integer >= 1, got {value!r}.")
    n_test = int(round(len(x) * held_out))
    if n_test < 1 or n_test >= len(x):
        raise ValueError(f"`held_out={held_out}` of {len(x)} digits leaves an empty training or held-out part.")
    device = torch.device(device) if device is not None else x.device
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(x), generator=generator)
    train, test = order[: len(x) - n_test], order[len(x) - n_test :]
    x, y = x.to(device), labels.long().to(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        classifier = DigitClassifier().to(device)
    optimizer = torch.optim.Adam(classifier.parameters(), lr=lr)
    classifier.train()
    for _ in range(epochs):
        for batch in train[torch.randperm(len(train), generator=generator)].split(batch_size):
            batch = batch.to(device)
            loss = F.cross_entropy(classifier(x[batch]), y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    classifier.eval()
    test = test.to(device)
    with torch.no_grad():
        predicted = torch.cat([classifier(x[b]).argmax(dim=1) for b in test.split(1024)])
    accuracy = (predicted == y[test]).double().mean().item()
    return classifier, accuracy


def predict_modes(classifier: nn.Module, samples: Tensor, batch_size: int = 2048) -> Tensor:
    """The mode ``100 * d_R + 10 * d_G + d_B`` of each sample ``(N, 3, H, W)``, its digits read by ``classifier``.

    Each channel is classified as a single-channel image ``(N, 1, H, W)``; samples whose size differs from the
    classifier's ``image_size`` attribute (when it has one) are first resized to it (bilinear, antialiased).
    Runs without gradients on the classifier's device, in eval mode (its mode is restored afterwards).

    Raises:
        TypeError: If ``samples`` is not a tensor.
        ValueError: If ``samples`` is not ``(N, 3, H, W)``, or the classifier does not return ``(n, 10)`` logits.
    """
    if not isinstance(samples, Tensor):
        raise TypeError(f"`samples` must be a tensor of shape (N, 3, H, W), got {type(samples).__name__}.")
    if samples.dim() != 4 or samples.shape[1] != 3:
        raise ValueError(f"`samples` must have shape (N, 3, H, W) (three stacked digits), got {tuple(samples.shape)}.")
    parameter = next(classifier.parameters(), None)
    device = parameter.device if parameter is not None else samples.device
    dtype = parameter.dtype if parameter is not None and parameter.is_floating_point() else torch.float32
    size = getattr(classifier, "image_size", None)
    was_training = classifier.training
    classifier.eval()
    modes = []
    try:
        with torch.no_grad():
            for chunk in samples.detach().split(batch_size):
                x = chunk.to(device=device, dtype=dtype)
                if size is not None and tuple(x.shape[-2:]) != (size, size):
                    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
                logits = classifier(x.reshape(-1, 1, *x.shape[-2:]))  # channels of a sample are consecutive
                if not isinstance(logits, Tensor) or logits.shape != (3 * len(chunk), 10):
                    shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
                    raise ValueError(f"The classifier must return logits of shape ({3 * len(chunk)}, 10), got {shape}.")
                digits = logits.argmax(dim=1).view(-1, 3)
                modes.append((digits * torch.tensor(_PLACE_VALUES, device=digits.device)).sum(dim=1))
    finally:
        classifier.train(was_training)
    return torch.cat(modes) if modes else torch.empty(0, dtype=torch.long, device=device)


def mode_statistics(counts: Tensor) -> dict[str, Tensor]:
    """``modes_covered``, ``reverse_kl`` (nats) and ``num_samples`` of a mode histogram (float64 scalars).

    Args:
        counts: Samples per mode, ``(1000,)``.

    Example:
        >>> counts = torch.zeros(1000)
        >>> counts[:500] = 2.0  # half of the modes, evenly: KL = log 2
        >>> {k: round(v.item(), 4) for k, v in mode_statistics(counts).items()}
        {'modes_covered': 500.0, 'reverse_kl': 0.6931, 'num_samples': 1000.0}
    """
    counts = counts.to(torch.float64)
    total = counts.sum()
    p = counts / total
    # 0 log 0 = 0: empty modes add nothing (xlogy is 0 wherever its first argument is).
    kl = torch.special.xlogy(p, p * NUM_MODES).sum()
    if total.item() == 0:
        kl = torch.full_like(kl, math.nan)
    return {"modes_covered": (counts > 0).sum().to(torch.float64), "reverse_kl": kl, "num_samples": total}


def stacked_mnist_modes(classifier: nn.Module, samples: Tensor, batch_size: int = 2048) -> dict[str, float]:
    r"""Modes covered (out of 1,000) and reverse KL to the uniform mode distribution of Stacked MNIST samples.

    Steps 3 and 4 of the module's protocol: each channel of the ``(N, 3, H, W)`` samples is classified
    (:func:`predict_modes`), and the histogram of the modes gives ``modes_covered`` (distinct modes among the
    samples), ``reverse_kl`` (:math:`\mathrm{KL}(p_\text{model} \Vert \text{uniform})` in nats) and
    ``num_samples``. Published numbers use 26,000 samples.

    Returns:
        ``{"modes_covered": int, "reverse_kl": float, "num_samples": int}``.

    Raises:
        ValueError: If ``samples`` is empty or holds NaN or infinite values, or as :func:`predict_modes`.
    """
    if isinstance(samples, Tensor) and samples.dim() == 4 and samples.shape[0] == 0:
        raise ValueError("`samples` is empty: the mode statistics need at least one sample.")
    if isinstance(samples, Tensor) and not torch.isfinite(samples).all():
        raise ValueError("`samples` hold NaN or infinite values (has the generator diverged?); their digits are undefined.")
    modes = predict_modes(classifier, samples, batch_size)
    stats = mode_statistics(torch.bincount(modes.cpu(), minlength=NUM_MODES))
    return {
        "modes_covered": int(stats["modes_covered"].item()),
        "reverse_kl": stats["reverse_kl"].item(),
        "num_samples": int(stats["num_samples"].item()),
    }


class StackedMNISTModes(Metric):
    r"""Modes covered and reverse KL of Stacked MNIST samples, as a ``torchmetrics.Metric``.

    :meth:`update` classifies each channel of a batch of generated samples ``(n, 3, H, W)`` with
    ``classifier`` (:func:`predict_modes`) and adds the modes to a 1,000-bin histogram; :meth:`compute`
    returns ``modes_covered``, ``reverse_kl`` (:math:`\mathrm{KL}(p \Vert u)` in nats, see the module) and
    ``num_samples`` (float64 scalars). The histogram is summed across processes
    (``dist_reduce_fx="sum"``), so under DDP each process passes its own samples and every sample counts
    once. The protocol of the papers is 26,000 samples, with the classifier's accuracy reported beside.

    Samples holding NaN or infinite values are left out of the histogram and counted; :meth:`compute` then
    raises on every process together (raising in ``update``, on one process, would leave the others waiting).

    The classifier is a submodule: ``metric.to(device)`` moves it too.

    Args:
        classifier: Maps ``(n, 1, S, S)`` digits in ``[-1, 1]`` to ``(n, 10)`` logits, e.g. from
            :func:`train_digit_classifier`.
        batch_size: Samples classified per forward pass.
        **kwargs: Passed to :class:`torchmetrics.Metric`.

    Raises:
        TypeError: If ``classifier`` is not an ``nn.Module``.

    Example:
        >>> class Brightness(torch.nn.Module):  # reads the digit d from a constant image of value d / 10
        ...     def forward(self, x):
        ...         return F.one_hot((x.mean(dim=(1, 2, 3)) * 10).round().long(), 10).float()
        >>> metric = StackedMNISTModes(Brightness())
        >>> metric.update(torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1).expand(4, 3, 28, 28))  # mode 123
        >>> {k: round(v.item(), 4) for k, v in metric.compute().items()}  # KL = log 1000
        {'modes_covered': 1.0, 'reverse_kl': 6.9078, 'num_samples': 4.0}
    """

    is_differentiable = False
    higher_is_better = None  # more modes is better, a lower KL is better
    full_state_update = False

    def __init__(self, classifier: nn.Module, batch_size: int = 2048, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(classifier, nn.Module):
            raise TypeError(f"`classifier` must be an nn.Module, got {type(classifier).__name__}.")
        self.classifier = classifier
        self.batch_size = batch_size
        self.add_state("mode_counts", torch.zeros(NUM_MODES, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("nonfinite", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, samples: Tensor) -> None:
        """Classifies a batch of generated samples ``(n, 3, H, W)`` (``n`` may be 0) and counts their modes."""
        if not isinstance(samples, Tensor):
            raise TypeError(f"`samples` must be a tensor of shape (n, 3, H, W), got {type(samples).__name__}.")
        finite = torch.isfinite(samples.detach().reshape(samples.shape[0], -1)).all(dim=1) if samples.dim() == 4 else None
        if finite is not None and not bool(finite.all()):
            samples = samples[finite]
        device = self.mode_counts.device
        if samples.dim() == 4 and samples.shape[0] == 0:
            counts = torch.zeros(NUM_MODES, dtype=torch.float64, device=device)
        else:
            modes = predict_modes(self.classifier, samples, self.batch_size).to(device)
            counts = torch.bincount(modes, minlength=NUM_MODES).to(torch.float64)
        # Out of place: states reset under inference mode cannot be modified in place outside it.
        self.mode_counts = self.mode_counts + counts
        if finite is not None:
            self.nonfinite = self.nonfinite + (~finite).sum().to(device)

    def compute(self) -> dict[str, Tensor]:
        """``modes_covered``, ``reverse_kl`` and ``num_samples`` (float64 scalars).

        Raises:
            ValueError: If some samples held NaN or infinite values.
            RuntimeError: If no sample was seen (on any process).
        """
        nonfinite = int(self.nonfinite.item())
        if nonfinite:
            raise ValueError(
                f"{nonfinite} of the samples held NaN or infinite values (has the generator diverged?); their digits "
                "are undefined."
            )
        if self.mode_counts.sum().item() == 0:
            raise RuntimeError("StackedMNISTModes saw no samples: call `update(samples)` before `compute()`.")
        return mode_statistics(self.mode_counts)


def _as_digits(images: Tensor) -> Tensor:
    """``(N, 1, H, W)`` float32 digits in ``[-1, 1]`` from uint8 ``[0, 255]`` or float ``[-1, 1]`` images."""
    if not isinstance(images, Tensor):
        raise TypeError(f"`images` must be a tensor, got {type(images).__name__}.")
    if images.dim() == 3:
        images = images.unsqueeze(1)
    if images.dim() != 4 or images.shape[1] != 1 or tuple(images.shape[-2:]) != (28, 28):
        raise ValueError(f"`images` must be MNIST digits (N, 1, 28, 28) or (N, 28, 28), got {tuple(images.shape)}.")
    if images.dtype == torch.uint8:
        return images.float().div_(127.5).sub_(1.0)
    return images.float()


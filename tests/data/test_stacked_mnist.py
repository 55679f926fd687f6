"""Stacked MNIST: the stacked data module (digits, modes, seeds, splits, errors) and the mode-counting metric.

Nothing here downloads: synthetic IDX files are written under ``tmp_path``; one test reads the real MNIST
test split from ``shared/data/MNIST`` (a sibling of the repository) when present. The metric is checked with
a stub classifier that reads a digit from an image's brightness, so every count and KL is known exactly.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import SHARED_DATA, needs_shared_mnist
from torch import nn

from lightning_gan.data import StackedMNISTDataModule, stack_digits, uint8_to_signed_unit
from lightning_gan.data.mnist import MNISTDataModule
from lightning_gan.metrics.stacked_mnist import (
    StackedMNISTModes,
    predict_modes,
    stacked_mnist_modes,
    train_digit_classifier,
)

N_TRAIN, N_TEST = 60, 20
PLACES = torch.tensor([100, 10, 1])


# ------------------------------------------------------------------------------------------------ helpers


def write_idx(path: Path, data: torch.Tensor) -> None:
    """The IDX encoding of a uint8 tensor: magic 0x0000 08 <ndim>, big-endian int32 dims, then the bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = bytes([0, 0, 0x08, data.dim()]) + b"".join(d.to_bytes(4, "big") for d in data.shape)
    path.write_bytes(header + data.contiguous().numpy().tobytes())


def make_digits(n: int, offset: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random 28x28 uint8 images whose pixel (0, 0) is a unique id, with a 0 and a 255 pixel, and labels."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 28, 28), generator=g, dtype=torch.uint8)
    images[:, 0, 0] = torch.arange(offset, offset + n, dtype=torch.uint8)
    images[:, 0, 1] = 0
    images[:, 0, 2] = 255
    return images, torch.randint(0, 10, (n,), generator=g, dtype=torch.uint8)


@pytest.fixture
def mnist_dir(tmp_path: Path) -> tuple[Path, dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    written = {}
    for prefix, split, (n, offset, seed) in (("train", "train", (N_TRAIN, 0, 1)), ("t10k", "test", (N_TEST, 100, 2))):
        images, labels = make_digits(n, offset, seed)
        write_idx(tmp_path / "MNIST" / "raw" / f"{prefix}-images-idx3-ubyte", images)
        write_idx(tmp_path / "MNIST" / "raw" / f"{prefix}-labels-idx1-ubyte", labels)
        written[split] = (images, labels.long())
    return tmp_path, written


def stacked(root: Path, **kwargs) -> StackedMNISTDataModule:
    options = dict(download=False, num_samples=50, val_size=10, batch_size=16, seed=3)
    options.update(kwargs)
    dm = StackedMNISTDataModule(root, **options)
    dm.setup()
    return dm


def signed(value: float) -> float:
    return value / 127.5 - 1.0


class Brightness(nn.Module):
    """A stub classifier: the digit ``d`` is read from the mean brightness of a constant image (see ``shade``)."""

    image_size = 28

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(tuple(x.shape))
        digits = ((x.mean(dim=(1, 2, 3)) + 1.0) / 2.0 * 10).floor().long().clamp(0, 9)
        return F.one_hot(digits, 10).float()


def shade(digit: torch.Tensor) -> torch.Tensor:
    """The brightness in [-1, 1] that ``Brightness`` reads as ``digit``: the middle of its tenth."""
    return -1.0 + 2.0 * (digit.double() + 0.5) / 10.0


def samples_of(modes: list[int] | torch.Tensor, size: int = 28) -> torch.Tensor:
    """Constant (N, 3, size, size) images whose channels ``Brightness`` reads as the digits of ``modes``."""
    modes = torch.as_tensor(modes)
    digits = torch.stack([modes // 100, modes // 10 % 10, modes % 10], dim=1)
    return shade(digits).float()[:, :, None, None].expand(-1, -1, size, size).contiguous()


# ---------------------------------------------------------------------------------------------- the data


def test_stack_digits_takes_each_channel_from_the_drawn_digit_and_labels_its_mode() -> None:
    images, labels = make_digits(40, 0, 0)
    out, modes, positions = stack_digits(images.unsqueeze(1), labels, 500, torch.Generator().manual_seed(0))
    assert out.shape == (500, 3, 28, 28) and out.dtype == torch.uint8
    assert positions.shape == (500, 3) and modes.dtype == torch.int64
    for c in range(3):
        assert torch.equal(out[:, c], images[positions[:, c]])
    digits = labels.long()[positions]
    assert torch.equal(modes, 100 * digits[:, 0] + 10 * digits[:, 1] + digits[:, 2])
    assert 0 <= int(modes.min()) and int(modes.max()) <= 999
    # The three channels are drawn independently: not the same digit three times.
    assert (positions[:, 0] != positions[:, 1]).float().mean() > 0.9
    # Uniform over the 40 digits: every digit is drawn for every channel.
    assert all(len(positions[:, c].unique()) == 40 for c in range(3))


def test_stack_digits_is_reproducible_with_a_seeded_generator() -> None:
    images, labels = make_digits(30, 0, 0)
    a = stack_digits(images, labels, 100, torch.Generator().manual_seed(5))
    b = stack_digits(images, labels, 100, torch.Generator().manual_seed(5))
    c = stack_digits(images, labels, 100, torch.Generator().manual_seed(6))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[2], c[2])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(labels=torch.tensor([0, 10])), "`labels` must be digits"),
        (dict(labels=torch.tensor([0])), "`labels` must have shape"),
        (dict(num_samples=-1), "`num_samples`"),
        (dict(images=torch.zeros(2, 3, 28, 28, dtype=torch.uint8)), "single-channel"),
    ],
)
def test_stack_digits_refuses_bad_input(kwargs, match) -> None:
    args = dict(images=torch.zeros(2, 28, 28, dtype=torch.uint8), labels=torch.tensor([0, 1]), num_samples=3)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        stack_digits(**args)


def test_module_stacks_the_digits_of_each_pool_with_their_mode_labels(mnist_dir) -> None:
    root, written = mnist_dir
    dm = stacked(root)
    digits = MNISTDataModule(root, download=False, val_size=10, seed=3)
    digits.setup()
    sizes = {"train": 50, "val": 10, "test": N_TEST}  # train: num_samples; val/test: as many as their digits
    for split, (images, modes) in dm.splits.items():
        assert images.shape == (sizes[split], 3, 28, 28) and images.dtype == torch.uint8
        assert modes.dtype == torch.int64
        source_images, source_labels = written["test" if split == "test" else "train"]
        positions = dm.split_indices[split]
        for c in range(3):
            assert torch.equal(images[:, c], source_images[positions[:, c]])
        assert torch.equal(modes, source_labels[positions] @ PLACES)
        # Each pool's stacks use that pool's digits only: no validation digit is in a training image.
        assert set(positions.flatten().tolist()) <= set(digits.split_indices[split].tolist())
    assert dm.image_shape == (3, 28, 28) and dm.num_classes == 1000
    assert torch.equal(dm.digit_splits["val"][0], digits.splits["val"][0])


def test_batches_are_images_in_signed_unit_range_and_mode_labels(mnist_dir) -> None:
    root, _ = mnist_dir
    dm = stacked(root)
    train = list(dm.train_dataloader())
    assert len(train) == 50 // 16  # the last incomplete training batch is dropped
    images, labels = train[0]
    assert images.shape == (16, 3, 28, 28) and images.dtype == torch.float32 and labels.dtype == torch.int64
    assert float(images.min()) == -1.0 and float(images.max()) == 1.0
    stored, stored_modes = dm.splits["train"]
    served = torch.cat([b[0] for b in train])
    # Each served image is a stored one (pixel (0, 0) of each channel is its digit's id), mapped to [-1, 1].
    ids = ((served[:, :, 0, 0] + 1.0) * 127.5).round().long()
    index = {tuple(v): i for i, v in enumerate(stored[:, :, 0, 0].long().tolist())}
    rows = torch.tensor([index[tuple(v)] for v in ids.tolist()])
    torch.testing.assert_close(served, uint8_to_signed_unit(stored[rows]), rtol=0, atol=1e-6)
    assert torch.equal(torch.cat([b[1] for b in train]), stored_modes[rows])
    val = list(dm.val_dataloader())
    assert [len(b[0]) for b in val] == [10] and float(val[0][0].min()) >= -1.0 and float(val[0][0].max()) <= 1.0


def test_image_size_32_resizes_the_digits_and_keeps_the_draw(mnist_dir) -> None:
    root, _ = mnist_dir
    small, large = stacked(root), stacked(root, image_size=32)
    assert large.image_shape == (3, 32, 32)
    images, modes = large.splits["train"]
    assert images.shape == (50, 3, 32, 32) and images.dtype == torch.uint8
    assert torch.equal(modes, small.splits["train"][1])
    assert torch.equal(large.split_indices["train"], small.split_indices["train"])
    expected = F.interpolate(small.splits["train"][0].float(), size=32, mode="bilinear", antialias=True)
    assert (images.float() - expected).abs().max() <= 0.5 + 1e-4  # the resized pixels, rounded
    batch = next(iter(large.train_dataloader()))[0]
    assert batch.shape == (16, 3, 32, 32) and float(batch.min()) >= -1.0 and float(batch.max()) <= 1.0


def test_the_stacked_sets_depend_on_the_seed_only(mnist_dir) -> None:
    root, _ = mnist_dir
    a, b, other = stacked(root), stacked(root), stacked(root, seed=4)
    for split in ("train", "val", "test"):
        assert torch.equal(a.splits[split][0], b.splits[split][0])
        assert torch.equal(a.splits[split][1], b.splits[split][1])
    assert not torch.equal(a.split_indices["train"], other.split_indices["train"])
    # The test split is the same whether it is set up alone or after the training split.
    alone = StackedMNISTDataModule(root, download=False, num_samples=50, val_size=10, seed=3)
    alone.setup("test")
    assert set(alone.splits) == {"test"}
    assert torch.equal(alone.splits["test"][0], a.splits["test"][0])


def test_the_test_split_alone_with_holdout(tmp_path: Path) -> None:
    images, labels = make_digits(N_TEST, 0, 2)
    write_idx(tmp_path / "raw" / "t10k-images-idx3-ubyte", images)
    write_idx(tmp_path / "raw" / "t10k-labels-idx1-ubyte", labels)
    dm = stacked(tmp_path, train_split="test", holdout=0, val_size=0)
    assert set(dm.splits) == {"train", "val", "test"} and len(dm.splits["train"][0]) == 50
    assert dm.val_dataloader() == [] and dm.test_dataloader() == []
    assert torch.equal(dm.splits["train"][1], labels.long()[dm.split_indices["train"]] @ PLACES)
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        stacked(tmp_path)  # train_split="train" needs the training files


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_samples=0), "`num_samples` must be an integer >= 1"),
        (dict(num_samples=2.5), "`num_samples` must be an integer >= 1"),
        (dict(num_samples=True), "`num_samples` must be an integer >= 1"),
        (dict(image_size=64), r"`image_size` must be one of \[28, 32\]"),
        (dict(image_size=True), r"`image_size` must be one of \[28, 32\]"),
        (dict(train_split="val"), "`train_split` must be one of"),
        (dict(train_split="test"), "needs `holdout=K`"),
        (dict(batch_size=0), "`batch_size` must be an integer >= 1"),
        (dict(val_size=-1), "`val_size` must be an integer >= 0"),
        (dict(on_accelerator=True, num_workers=2), "`on_accelerator=True` needs `num_workers=0`"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_them(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        StackedMNISTDataModule("unused", download=False, **kwargs)


@needs_shared_mnist
def test_real_test_split_modes_are_the_true_digits() -> None:
    dm = StackedMNISTDataModule(SHARED_DATA, download=False, train_split="test", holdout=0, val_size=0, num_samples=2000)
    dm.setup("fit")
    images, modes = dm.splits["train"]
    digits, labels = dm.digit_splits["train"]
    positions = dm.split_indices["train"]
    assert len(digits) == 10_000 and images.shape == (2000, 3, 28, 28)
    assert torch.equal(images[:, 1], digits[positions[:, 1], 0])
    assert torch.equal(modes, labels[positions] @ PLACES)
    assert len(modes.unique()) > 800  # 2,000 draws from 1,000 near-uniform modes reach ~865 of them


# -------------------------------------------------------------------------------------------- the metric


def test_predict_modes_reads_red_as_hundreds_and_blue_as_units() -> None:
    modes = [123, 321, 900, 9, 0, 999]
    assert predict_modes(Brightness(), samples_of(modes)).tolist() == modes


def test_uniform_over_all_modes_covers_1000_with_zero_kl() -> None:
    result = stacked_mnist_modes(Brightness(), samples_of(torch.arange(1000).repeat(2)))
    assert result["modes_covered"] == 1000 and result["num_samples"] == 2000
    assert abs(result["reverse_kl"]) < 1e-12


def test_one_mode_gives_kl_log_1000() -> None:
    result = stacked_mnist_modes(Brightness(), samples_of([417] * 30))
    assert result == {"modes_covered": 1, "reverse_kl": pytest.approx(math.log(1000), abs=1e-12), "num_samples": 30}


def test_hand_made_histogram() -> None:
    # p = (1/2, 1/4, 1/4) on three modes: KL = sum p log(1000 p).
    result = stacked_mnist_modes(Brightness(), samples_of([5, 5, 70, 600]))
    expected = 0.5 * math.log(500) + 0.25 * math.log(250) * 2
    assert result["modes_covered"] == 3 and result["reverse_kl"] == pytest.approx(expected, abs=1e-12)


def test_samples_of_another_size_are_resized_to_the_classifier() -> None:
    classifier = Brightness()
    assert predict_modes(classifier, samples_of([58, 731], size=32)).tolist() == [58, 731]
    assert classifier.calls == [(6, 1, 28, 28)]


def test_metric_state_sums_over_updates_and_processes() -> None:
    first, second = samples_of([1, 1, 2, 999]), samples_of([2, 3, 500])
    once = StackedMNISTModes(Brightness())
    once.update(torch.cat([first, second]))
    twice = StackedMNISTModes(Brightness())
    twice.update(first)
    twice.update(second)
    assert torch.equal(twice.mode_counts, once.mode_counts)
    assert once.mode_counts.shape == (1000,) and once.mode_counts.sum() == 7 and once.mode_counts[2] == 2
    shard, other = StackedMNISTModes(Brightness()), StackedMNISTModes(Brightness())
    shard.update(first)
    other.update(second)
    shard.merge_state(other)  # torchmetrics' sum reduction, as a DDP sync does it
    expected = stacked_mnist_modes(Brightness(), torch.cat([first, second]))
    for result in (once.compute(), twice.compute(), shard.compute()):
        assert {k: v.item() for k, v in result.items()} == pytest.approx(expected, abs=1e-12)
    assert expected["modes_covered"] == 5


def test_metric_refuses_nonfinite_samples_and_no_samples() -> None:
    bad = samples_of([1, 2])
    bad[1, 0, 3, 3] = float("nan")
    metric = StackedMNISTModes(Brightness())
    metric.update(bad)  # does not raise on one process alone
    assert metric.mode_counts.sum() == 1
    with pytest.raises(ValueError, match="1 of the samples held NaN"):
        metric.compute()
    with pytest.raises(ValueError, match="NaN or infinite"):
        stacked_mnist_modes(Brightness(), bad)
    with pytest.warns(UserWarning, match="before the ``update``"), pytest.raises(RuntimeError, match="saw no samples"):
        StackedMNISTModes(Brightness()).compute()
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        predict_modes(Brightness(), torch.zeros(2, 1, 28, 28))


def test_train_digit_classifier_learns_and_is_seeded() -> None:
    # Easy synthetic digits: a bright bar whose row is the digit, on noise.
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (400,), generator=g)
    images = torch.randint(0, 60, (400, 1, 28, 28), generator=g, dtype=torch.uint8)
    rows = 2 + 2 * labels
    images[torch.arange(400), 0, rows] = 255
    images[torch.arange(400), 0, rows + 1] = 255
    model, accuracy = train_digit_classifier(images, labels, held_out=0.25, epochs=6, seed=1)
    again, same = train_digit_classifier(images, labels, held_out=0.25, epochs=6, seed=1)
    assert accuracy > 0.9 and accuracy == same
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), again.parameters()))
    assert not model.training
    with pytest.raises(ValueError, match="`held_out`"):
        train_digit_classifier(images, labels, held_out=1.0)
    with pytest.raises(ValueError, match="`epochs`"):
        train_digit_classifier(images, labels, epochs=0)

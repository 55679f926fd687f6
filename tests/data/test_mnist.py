"""MNIST-family data modules: IDX reading, folder layouts, deterministic splits, batches, errors, real data.

Nothing here downloads: synthetic IDX files are written under ``tmp_path``, and the real MNIST test
split is read from ``shared/data/MNIST`` (a sibling of the repository) when present.
"""

from __future__ import annotations

import gzip
import hashlib
import re
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from conftest import SHARED_DATA, SHARED_MNIST, cpu_trainer, needs_shared_mnist
from torch import nn

from lightning_gan.data.mnist import CIFAR10DataModule, FashionMNISTDataModule, MNISTDataModule

MNIST_TEST_CLASS_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]

N_TRAIN, N_TEST = 50, 20


def idx_bytes(data: torch.Tensor) -> bytes:
    """The IDX encoding of a uint8 tensor: magic 0x0000 08 <ndim>, big-endian int32 dims, then the bytes."""
    header = bytes([0, 0, 0x08, data.dim()]) + b"".join(d.to_bytes(4, "big") for d in data.shape)
    return header + data.contiguous().numpy().tobytes()


def write_idx(path: Path, data: torch.Tensor, gz: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(idx_bytes(data)))
    else:
        path.write_bytes(idx_bytes(data))
    return path


def make_split(n: int, offset: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random images whose pixel (0, 0) is a unique id (offset + i), with a 0 and a 255 pixel, and labels."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 28, 28), generator=g, dtype=torch.uint8)
    images[:, 0, 0] = torch.arange(offset, offset + n, dtype=torch.uint8)
    images[:, 0, 1] = 0
    images[:, 0, 2] = 255
    labels = torch.randint(0, 10, (n,), generator=g, dtype=torch.uint8)
    return images, labels


def write_mnist(raw: Path, gz: bool = True, splits: tuple[str, ...] = ("train", "t10k")) -> dict:
    """Writes torchvision-named IDX files into ``raw``; returns ``{"train"|"test": (images, labels)}``."""
    written = {}
    for prefix in splits:
        n, offset, seed = (N_TRAIN, 0, 1) if prefix == "train" else (N_TEST, 100, 2)
        images, labels = make_split(n, offset, seed)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images, gz)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels, gz)
        written["train" if prefix == "train" else "test"] = (images, labels)
    return written


def collect(loader) -> tuple[torch.Tensor, torch.Tensor]:
    batches = list(loader)
    return torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])


def assert_signed_unit_of(served: torch.Tensor, images: torch.Tensor) -> None:
    """``served`` is ``images`` (N, H, W uint8) mapped linearly from [0, 255] to [-1, 1]."""
    expected = images.unsqueeze(1).double() / 127.5 - 1.0
    torch.testing.assert_close(served.double(), expected, rtol=0, atol=1e-6)
    assert torch.equal(((served.double() + 1.0) * 127.5).round().to(torch.uint8), images.unsqueeze(1))


@pytest.fixture
def mnist_root(tmp_path: Path) -> tuple[Path, dict]:
    return tmp_path, write_mnist(tmp_path / "MNIST" / "raw")


# ------------------------------------------------------------------------------------ synthetic files


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "plain"])
def test_synthetic_mnist_batches_shapes_values_and_labels(tmp_path, gz):
    data = write_mnist(tmp_path / "MNIST" / "raw", gz=gz)
    dm = MNISTDataModule(tmp_path, download=False, val_size=10, batch_size=8)
    dm.setup("fit")
    dm.setup("test")

    images, labels = collect(dm.val_dataloader())
    assert images.shape == (10, 1, 28, 28) and images.dtype == torch.float32
    assert labels.dtype == torch.int64
    index = dm.split_indices["val"]
    train_images, train_labels = data["train"]
    assert_signed_unit_of(images, train_images[index])
    assert torch.equal(labels, train_labels[index].long())
    assert torch.all(images[:, 0, 0, 1] == -1.0) and torch.all(images[:, 0, 0, 2] == 1.0)
    assert images.min() == -1.0 and images.max() == 1.0

    test_images, test_labels = collect(dm.test_dataloader())
    assert_signed_unit_of(test_images, data["test"][0])
    assert torch.equal(test_labels, data["test"][1].long())

    batches = list(dm.train_dataloader())
    assert len(batches) == (N_TRAIN - 10) // 8
    assert all(b[0].shape == (8, 1, 28, 28) and b[0].dtype == torch.float32 for b in batches)
    assert all(b[1].shape == (8,) and b[1].dtype == torch.int64 for b in batches)


def test_split_is_a_seeded_partition_of_the_training_split(mnist_root):
    root, data = mnist_root

    def split(seed: int) -> MNISTDataModule:
        dm = MNISTDataModule(root, download=False, val_size=10, seed=seed)
        dm.setup("fit")
        return dm

    a, b, c = split(0), split(0), split(1)
    assert torch.equal(a.split_indices["val"], b.split_indices["val"])
    assert torch.equal(a.splits["val"][0], b.splits["val"][0])
    assert not torch.equal(a.split_indices["val"], c.split_indices["val"])

    train, val = a.split_indices["train"], a.split_indices["val"]
    assert len(train) == N_TRAIN - 10 and len(val) == 10
    assert torch.equal(torch.cat([train, val]).sort().values, torch.arange(N_TRAIN))
    # The ids in pixel (0, 0) tell which file image each served image is.
    ids = {name: set(a.splits[name][0][:, 0, 0, 0].tolist()) for name in ("train", "val")}
    assert ids["train"].isdisjoint(ids["val"]) and ids["train"] | ids["val"] == set(range(N_TRAIN))
    # A shuffled epoch serves each training image at most once (drop_last drops the rest).
    dm = MNISTDataModule(root, download=False, val_size=10, batch_size=10, seed=0)
    dm.setup("fit")
    images, _ = collect(dm.train_dataloader())
    served = ((images[:, 0, 0, 0] + 1) * 127.5).round().long().tolist()
    assert len(served) == len(set(served)) == N_TRAIN - 10 and set(served) <= ids["train"]


@pytest.mark.parametrize("where", ["root", "dataset folder", "raw folder"])
def test_data_dir_may_be_the_root_the_dataset_folder_or_raw(mnist_root, where):
    root, data = mnist_root
    data_dir = {"root": root, "dataset folder": root / "MNIST", "raw folder": root / "MNIST" / "raw"}[where]
    dm = MNISTDataModule(str(data_dir), download=False, val_size=0)
    dm.setup()
    assert torch.equal(dm.splits["train"][0], data["train"][0].unsqueeze(1))
    assert torch.equal(dm.splits["test"][1], data["test"][1].long())
    assert dm.val_dataloader() == []


def test_holdout_cuts_the_chosen_split_in_order(tmp_path, monkeypatch):
    data = write_mnist(tmp_path / "MNIST" / "raw", splits=("t10k",))
    import torchvision.datasets

    def no_download(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr(torchvision.datasets, "MNIST", no_download)
    dm = MNISTDataModule(tmp_path, train_split="test", holdout=5, val_size=10)  # download=True: files are there
    dm.prepare_data()
    dm.setup("fit")
    dm.setup("test")
    images, labels = data["test"]
    cut = {"train": slice(0, N_TEST - 15), "val": slice(N_TEST - 15, N_TEST - 5), "test": slice(N_TEST - 5, N_TEST)}
    for name, part in cut.items():
        assert torch.equal(dm.splits[name][0], images[part].unsqueeze(1)), name
        assert torch.equal(dm.splits[name][1], labels[part].long()), name
        assert torch.equal(dm.split_indices[name], torch.arange(N_TEST)[part]), name
    assert MNISTDataModule(tmp_path, download=False, train_split="test", holdout=0).test_dataloader() == []


def test_holdout_on_the_training_split_ignores_the_test_files(tmp_path):
    data = write_mnist(tmp_path / "MNIST" / "raw", splits=("train",))
    dm = MNISTDataModule(tmp_path, download=False, holdout=10, val_size=10)
    dm.setup()
    assert [len(dm.splits[s][0]) for s in ("train", "val", "test")] == [N_TRAIN - 20, 10, 10]
    assert torch.equal(dm.splits["test"][0], data["train"][0][-10:].unsqueeze(1))


@pytest.mark.parametrize("on_accelerator", [False, True])
def test_fits_with_a_trainer(mnist_root, on_accelerator):
    root, _ = mnist_root

    class Probe(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = nn.Linear(28 * 28, 10)
            self.seen: list[tuple] = []

        def training_step(self, batch, batch_idx):
            images, labels = batch
            self.seen.append((tuple(images.shape), images.dtype, labels.dtype))
            return nn.functional.cross_entropy(self.layer(images.flatten(1)), labels)

        def validation_step(self, batch, batch_idx):
            pass

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    probe = Probe()
    dm = MNISTDataModule(root, download=False, val_size=10, batch_size=16, on_accelerator=on_accelerator)
    cpu_trainer(max_epochs=1).fit(probe, datamodule=dm)
    assert probe.seen == [((16, 1, 28, 28), torch.float32, torch.int64)] * 2
    assert dm.splits["train"][0].device == probe.device


def test_fashion_mnist_reads_its_own_folder(tmp_path):
    data = write_mnist(tmp_path / "FashionMNIST" / "raw")
    dm = FashionMNISTDataModule(tmp_path, download=False, val_size=5)
    dm.setup()
    assert dm.image_shape == (1, 28, 28) and dm.num_classes == 10
    assert torch.equal(dm.splits["test"][0], data["test"][0].unsqueeze(1))
    assert len(dm.splits["train"][0]) == N_TRAIN - 5
    with pytest.raises(FileNotFoundError):
        MNISTDataModule(tmp_path, download=False).setup()


# ---------------------------------------------------------------------------------------------- errors


def test_missing_files_name_the_folders_and_files(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError) as error:
        MNISTDataModule(missing, download=False).setup("fit")
    message = str(error.value)
    assert str(missing / "MNIST" / "raw") in message and "train-images-idx3-ubyte" in message
    assert "download=True" in message


def test_missing_training_files_suggest_the_test_split(tmp_path):
    write_mnist(tmp_path / "MNIST" / "raw", splits=("t10k",))
    with pytest.raises(FileNotFoundError, match="train_split='test'"):
        MNISTDataModule(tmp_path, download=False).setup("fit")


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "plain"])
def test_truncated_idx_file_names_the_file(gz, tmp_path):
    raw = tmp_path / "cut" / "MNIST" / "raw"
    write_mnist(raw, gz=gz)
    name = "train-images-idx3-ubyte" + (".gz" if gz else "")
    path = raw / name
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match=re.escape(str(path))):
        MNISTDataModule(tmp_path / "cut", download=False, val_size=10).setup("fit")


def test_bad_magic_number_is_rejected(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    write_mnist(raw, gz=False)
    path = raw / "train-labels-idx1-ubyte"
    content = bytearray(path.read_bytes())
    content[2] = 0x0D  # float instead of unsigned byte
    path.write_bytes(bytes(content))
    with pytest.raises(ValueError, match="magic number"):
        MNISTDataModule(tmp_path, download=False, val_size=10).setup("fit")


def test_label_count_must_match_image_count(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    write_mnist(raw, gz=False)
    write_idx(raw / "train-labels-idx1-ubyte", torch.zeros(N_TRAIN - 1, dtype=torch.uint8), gz=False)
    with pytest.raises(ValueError, match="labels"):
        MNISTDataModule(tmp_path, download=False, val_size=10).setup("fit")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(batch_size=0), r"batch_size.*0"),
        (dict(val_size=-1), "val_size"),
        (dict(holdout=-1), "holdout"),
        (dict(train_split="val"), r"train_split.*'train', 'test'"),
        (dict(train_split="test"), "holdout"),
        (dict(num_workers=2, on_accelerator=True), "num_workers"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MNISTDataModule(download=False, **kwargs)


def test_splits_too_large_for_the_data_are_rejected(mnist_root):
    root, _ = mnist_root
    with pytest.raises(ValueError, match="val_size"):
        MNISTDataModule(root, download=False, val_size=N_TRAIN).setup("fit")
    with pytest.raises(ValueError, match="holdout"):
        MNISTDataModule(root, download=False, train_split="test", holdout=10, val_size=10).setup("fit")


def test_cifar10_shape_and_missing_files(tmp_path):
    dm = CIFAR10DataModule(tmp_path, download=False)
    assert dm.image_shape == (3, 32, 32) and dm.num_classes == 10
    with pytest.raises(FileNotFoundError) as error:
        dm.setup("fit")
    assert str(tmp_path / "cifar-10-batches-py") in str(error.value) and "data_batch_1" in str(error.value)


def test_cifar10_corrupt_files_are_reported_not_downloaded(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in ["batches.meta", "test_batch"] + [f"data_batch_{i}" for i in range(1, 6)]:
        (folder / name).write_bytes(b"not a pickle")
    for data_dir in (tmp_path, folder):
        with pytest.raises(ValueError, match="corrupt"):
            CIFAR10DataModule(data_dir, download=False).setup("test")


# ----------------------------------------------------------------------------------- real shared data


@needs_shared_mnist
def test_real_mnist_test_split_from_shared_data():
    sums = (SHARED_MNIST / "raw" / "MD5SUMS").read_text().split("\n")
    checked = 0
    for line in filter(None, (s.strip() for s in sums)):
        md5, relative = line.split()
        assert hashlib.md5((SHARED_DATA / relative).read_bytes()).hexdigest() == md5, relative
        assert MNISTDataModule.md5s[Path(relative).name] == md5
        checked += 1
    assert checked == 2

    dm = MNISTDataModule(SHARED_MNIST, download=False, train_split="test", holdout=2000, val_size=1000, batch_size=500)
    dm.setup("fit")
    dm.setup("test")
    sizes = {name: len(dm.splits[name][0]) for name in ("train", "val", "test")}
    assert sizes == {"train": 7000, "val": 1000, "test": 2000}
    labels = torch.cat([dm.splits[name][1] for name in ("train", "val", "test")])
    assert torch.bincount(labels, minlength=10).tolist() == MNIST_TEST_CLASS_COUNTS
    images, test_labels = collect(dm.test_dataloader())
    assert images.shape == (2000, 1, 28, 28) and images.min() == -1.0 and images.max() == 1.0
    assert torch.equal(test_labels, labels[-2000:])


def test_offline_download_names_the_four_files_their_folder_and_the_flag_and_leaves_no_folder(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline_mnist(root, train, download):  # what torchvision does offline: make the folder, then fail
        (Path(root) / "MNIST" / "raw").mkdir(parents=True, exist_ok=True)
        print("Tried https://ossci-datasets.s3.amazonaws.com/mnist/, got: <urlopen error [Errno -2] Name or service not known>")
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline_mnist)
    dm = MNISTDataModule(tmp_path / "data")
    with pytest.raises(RuntimeError) as error:
        dm.prepare_data()
    message = str(error.value)
    assert type(error.value).__name__ == "DataNotAvailableError"
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        assert name in message
    assert str(tmp_path / "data" / "MNIST" / "raw") in message and "--data.data_dir" in message and "download=False" in message
    assert not (tmp_path / "data").exists()  # no empty tree left behind

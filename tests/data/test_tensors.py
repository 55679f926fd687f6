"""TensorDataModule: whole-batch slicing, splits, device residency, DDP sharding and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from lightning_gan.data import BatchedTensorDataset, TensorDataModule, uint8_to_signed_unit

SCRIPT = Path(__file__).with_name("ddp_tensor_indices_script.py")


def test_batches_are_slices_covering_each_epoch_once():
    data = TensorDataModule((torch.arange(100.0).unsqueeze(1), torch.arange(100)), batch_size=10)
    data.setup("fit")
    batches = list(data.train_dataloader())
    assert len(batches) == 10
    seen = torch.cat([labels for _, labels in batches])
    assert sorted(seen.tolist()) == list(range(100)) and seen.tolist() != list(range(100))
    for samples, labels in batches:
        assert samples.shape == (10, 1) and torch.equal(samples.squeeze(1).long(), labels)


def test_dataset_fetches_a_batch_without_per_sample_getitem(monkeypatch):
    dataset = BatchedTensorDataset(torch.randn(64, 3))
    monkeypatch.setattr(BatchedTensorDataset, "__getitem__", lambda self, i: pytest.fail("per-sample fetch"))
    loader = DataLoader(dataset, batch_size=16, collate_fn=lambda batch: batch)
    assert [b[0].shape for b in loader] == [(16, 3)] * 4


def test_validation_and_test_loaders_keep_order_and_the_last_partial_batch():
    data = TensorDataModule(torch.zeros(10, 2), val=torch.arange(7.0).unsqueeze(1), test=torch.ones(3, 2), batch_size=4)
    val = torch.cat([b[0] for b in data.val_dataloader()])
    assert val.squeeze(1).tolist() == list(range(7))
    assert sum(len(b[0]) for b in data.test_dataloader()) == 3


def test_transform_turns_uint8_pixels_into_signed_unit_floats():
    pixels = torch.tensor([[0], [255], [51]], dtype=torch.uint8)
    data = TensorDataModule(pixels, batch_size=3, drop_last=False, transform=uint8_to_signed_unit)
    (batch,) = next(iter(data.train_dataloader()))
    assert batch.dtype == torch.float32
    assert sorted(batch.squeeze(1).tolist()) == pytest.approx([-1.0, 51 / 127.5 - 1, 1.0])


def test_shape_and_class_attributes_are_known_before_setup():
    data = TensorDataModule((torch.zeros(5, 1, 28, 28), torch.tensor([0, 3, 1, 2, 1])))
    assert data.image_shape == (1, 28, 28) and data.num_classes == 4
    assert TensorDataModule(torch.zeros(5, 2)).num_classes is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_size": 0}, "batch_size.*0"),
        ({"batch_size": -2}, "batch_size.*-2"),
        ({"num_workers": -1}, "num_workers"),
        ({"on_accelerator": True, "num_workers": 2}, "num_workers"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TensorDataModule(torch.zeros(4, 2), **kwargs)


def test_mismatched_or_empty_tensors_are_rejected():
    with pytest.raises(ValueError, match="differ in length"):
        TensorDataModule((torch.zeros(4, 2), torch.zeros(3)))
    with pytest.raises(ValueError, match="empty"):
        TensorDataModule(torch.zeros(0, 2))
    assert len(TensorDataModule(torch.zeros(4, 2)).val_dataloader()) == 0


def test_each_ddp_rank_reads_a_disjoint_half_of_every_epoch(tmp_path):
    out = tmp_path / "seen.json"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONWARNINGS": "ignore"}
    result = subprocess.run([sys.executable, str(SCRIPT), str(out)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ranks = {r["rank"]: r["seen"] for r in json.loads(out.read_text())}
    assert set(ranks) == {0, 1}
    orders = []
    for epoch in ("0", "1"):
        first, second = ranks[0][epoch], ranks[1][epoch]
        assert len(first) == len(second) == 20
        assert not set(first) & set(second)
        assert sorted(first + second) == list(range(40))
        orders.append(first)
    assert orders[0] != orders[1], "each epoch should be reshuffled"

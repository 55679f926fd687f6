"""Training loaders whose order is a function of (seed, epoch) and which resume in the middle of an epoch."""

from __future__ import annotations

import pytest
import torch

from lightning_gan.data import BatchedTensorDataset, ResumableDataLoader, TensorDataModule, collate_batch, resumable_loader


def _loader(seed: int = 0, n: int = 20, batch_size: int = 4, **kwargs) -> ResumableDataLoader:
    return resumable_loader(BatchedTensorDataset(torch.arange(float(n))), batch_size, seed, collate_fn=collate_batch,
                            **kwargs)


def _epoch(loader) -> list[float]:
    return [v for batch in loader for v in batch[0].tolist()]


def test_each_epoch_is_a_permutation_fixed_by_seed_and_epoch_alone():
    first, second = _loader(), _loader()
    torch.manual_seed(1)
    epochs_a = [_epoch(first) for _ in range(3)]
    torch.manual_seed(2)  # the global generator plays no part
    epochs_b = [_epoch(second) for _ in range(3)]
    assert epochs_a == epochs_b
    assert all(sorted(e) == [float(i) for i in range(20)] for e in epochs_a)
    assert len({tuple(e) for e in epochs_a}) == 3  # a new order every epoch
    assert _epoch(_loader(seed=1)) != epochs_a[0]


def test_a_mid_epoch_state_resumes_with_the_rest_of_that_epoch_then_the_next():
    straight = _loader()
    full = [_epoch(straight) for _ in range(2)]
    interrupted = _loader()
    iterator = iter(interrupted)
    seen = [v for _ in range(2) for v in next(iterator)[0].tolist()]
    state = interrupted.state_dict()
    assert state == {"epoch": 0, "batches": 2}
    resumed = _loader()
    resumed.load_state_dict(state)
    assert seen + _epoch(resumed) == full[0]
    assert _epoch(resumed) == full[1]


def test_a_state_saved_at_the_end_of_an_epoch_resumes_with_the_next_epoch():
    straight = _loader()
    full = [_epoch(straight) for _ in range(2)]
    done = _loader()
    _epoch(done)
    resumed = _loader()
    resumed.load_state_dict(done.state_dict())
    assert _epoch(resumed) == full[1]


def test_with_workers_the_skipped_batches_are_loaded_and_dropped():
    straight = _epoch(_loader(num_workers=1))
    resumed = _loader(num_workers=1)
    resumed.load_state_dict({"epoch": 0, "batches": 3})
    assert _epoch(resumed) == straight[12:]


def test_two_replicas_get_disjoint_shares_that_cover_the_epoch():
    shares = [_epoch(_loader(num_replicas=2, rank=r)) for r in (0, 1)]
    assert not set(shares[0]) & set(shares[1])
    assert sorted(shares[0] + shares[1]) == [float(i) for i in range(20)]


def test_a_data_module_saves_its_shuffling_seed_and_a_restored_one_wins(monkeypatch):
    monkeypatch.setenv("PL_GLOBAL_SEED", "5")
    dm = TensorDataModule(torch.arange(40.0).unsqueeze(1), batch_size=4)
    order = _epoch(dm.train_dataloader())
    assert dm.state_dict() == {"shuffle_seed": 5}
    monkeypatch.setenv("PL_GLOBAL_SEED", "99")  # a resumed run seeded differently
    resumed = TensorDataModule(torch.arange(40.0).unsqueeze(1), batch_size=4)
    resumed.load_state_dict(dm.state_dict())
    assert _epoch(resumed.train_dataloader()) == order
    fresh = TensorDataModule(torch.arange(40.0).unsqueeze(1), batch_size=4)
    assert _epoch(fresh.train_dataloader()) != order


def test_a_loader_sharded_for_another_number_of_processes_is_refused(monkeypatch):
    import torch.distributed as dist

    loader = _loader()  # built outside fit: one replica
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    with pytest.raises(ValueError, match=r"shards its data for 1 process\(es\) but 2 are training"):
        next(iter(loader))

"""A clear message when ``ckpt_path`` is not a Lightning checkpoint (a text file, a bare ``state_dict``)."""

from __future__ import annotations

from typing import Any, Optional

from lightning_fabric.plugins.io.checkpoint_io import CheckpointIO
from torch import Tensor


class CheckedCheckpointIO(CheckpointIO):
    """Wraps the strategy's checkpoint IO; loading checks that the file is a Lightning checkpoint.

    Why a wrapper: Lightning reads ``ckpt_path`` in ``resume_start`` and migrates it (which reads its
    version key) before any module hook sees it, so a text file fails with an unpickling ``IndexError``
    and a bare ``state_dict`` with ``KeyError: 'pytorch-lightning_version'``. Saving is passed through.
    """

    def __init__(self, inner: CheckpointIO) -> None:
        self.inner = inner

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Optional[Any] = None) -> None:
        self.inner.save_checkpoint(checkpoint, path, storage_options=storage_options)

    def load_checkpoint(self, path: Any, map_location: Optional[Any] = None, weights_only: Optional[bool] = None) -> dict[str, Any]:
        try:
            checkpoint = self.inner.load_checkpoint(path, map_location=map_location, weights_only=weights_only)
        except FileNotFoundError:
            raise
        except Exception as error:  # torch.load's errors for a non-checkpoint file are of many kinds
            raise ValueError(
                f"`ckpt_path` {str(path)!r} is not a checkpoint torch can read ({type(error).__name__}: {error}). Pass a "
                "file written by Lightning (ModelCheckpoint, trainer.save_checkpoint), e.g. 'checkpoints/last.ckpt'."
            ) from error
        if not isinstance(checkpoint, dict):
            raise ValueError(
                f"`ckpt_path` {str(path)!r} holds a {type(checkpoint).__name__}, not a Lightning checkpoint (a dict with "
                "'state_dict', 'optimizer_states', 'loops', ...)."
            )
        if "state_dict" not in checkpoint or "pytorch-lightning_version" not in checkpoint:
            if checkpoint and all(isinstance(v, Tensor) for v in checkpoint.values()):
                raise ValueError(
                    f"`ckpt_path` {str(path)!r} holds a bare state_dict ({len(checkpoint)} tensors, e.g. "
                    f"{next(iter(checkpoint))!r}), not a Lightning checkpoint: it has no optimizer states or training "
                    "progress to resume. Load the weights with `model.load_state_dict(torch.load(path))` and call "
                    "fit/validate/test without `ckpt_path`."
                )
            raise ValueError(
                f"`ckpt_path` {str(path)!r} is not a Lightning checkpoint: it lacks "
                f"{' and '.join(repr(k) for k in ('state_dict', 'pytorch-lightning_version') if k not in checkpoint)} "
                f"(its keys: {', '.join(map(repr, list(checkpoint)[:6]))}{', ...' if len(checkpoint) > 6 else ''})."
            )
        return checkpoint

    def remove_checkpoint(self, path: Any) -> None:
        self.inner.remove_checkpoint(path)

    def teardown(self) -> None:
        self.inner.teardown()


def check_checkpoint_files(strategy: Any) -> None:
    """Makes ``strategy`` check what it loads (once; its own checkpoint IO keeps saving)."""
    if not isinstance(strategy.checkpoint_io, CheckedCheckpointIO):
        strategy.checkpoint_io = CheckedCheckpointIO(strategy.checkpoint_io)

"""W&B without surprises: a run with no API key, or no route to the server, logs offline and says how to upload it."""

from __future__ import annotations

import netrc
import os
import socket
import urllib.parse
from pathlib import Path
from typing import Any, Optional

from pytorch_lightning.utilities import rank_zero_only

_WANDB_HOST = "https://api.wandb.ai"


def _process_rank() -> int:
    return int(rank_zero_only.rank or 0)


def _logger_specs(logger: Any) -> list[Any]:
    if isinstance(logger, (list, tuple)):
        return list(logger)
    return [logger] if logger not in (None, True, False) else []


def _prepare_wandb(logger_config: Any) -> Optional[str]:
    """Switches W&B to offline mode when it has no API key or cannot reach its server; returns the line to say."""
    specs = [s for s in _logger_specs(logger_config) if str(getattr(s, "class_path", "")).endswith("WandbLogger")]
    if not specs or _process_rank() > 0:
        return None
    init_args = specs[0].get("init_args") or {}
    save_dir = Path(init_args.get("save_dir") or init_args.get("dir") or ".")
    later = f"upload it later with `wandb sync {save_dir / 'wandb'}/offline-run-*`"
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode == "disabled":
        return None
    if mode in ("offline", "dryrun") or init_args.get("offline"):
        return f"W&B logs offline under {save_dir / 'wandb'}; {later}."
    host = os.environ.get("WANDB_BASE_URL", _WANDB_HOST)
    if not _wandb_api_key(host):
        reason: Optional[str] = "no W&B API key (WANDB_API_KEY is unset and `wandb login` was never run)"
    else:
        reason = _unreachable(host)
    if not reason:
        return None
    os.environ["WANDB_MODE"] = "offline"
    return f"W&B logs offline: {reason}; the run is under {save_dir / 'wandb'}, {later}."


def _wandb_api_key(host: str) -> Optional[str]:
    key = os.environ.get("WANDB_API_KEY")
    if key:
        return key
    hostname = urllib.parse.urlparse(host).hostname or host
    try:
        auth = netrc.netrc(os.environ.get("NETRC")).authenticators(hostname)
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return None
    return auth[2] if auth else None


def _unreachable(host: str, timeout: float = 3.0) -> Optional[str]:
    parsed = urllib.parse.urlparse(host)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname or host, port), timeout=timeout).close()
    except OSError as error:
        return f"cannot reach {parsed.hostname}:{port} ({error})"
    return None

"""Score a checkpoint: ``python -m lightning_gan.evaluate CKPT --data CLASS [--data.ARG ...] --metrics fid,kid,is,pr,parzen,ais``.

Loads any checkpoint the package wrote (its class is recorded in it; ``--model`` names it for older
ones), generates with the moving-average generator when there is one, computes the chosen metrics from
one pass through the feature extractor on every visible device (the ``gan_ddp`` strategy when there are
several), shows a progress bar over the sample batches, and writes a JSON file of every number with the
protocol behind it (sample counts, real split and count, extractor, weights sha256, package version).

Example (shell)::

    python -m lightning_gan.evaluate checkpoints/last.ckpt --data MNISTDataModule --data.data_dir data \\
        --metrics fid,kid,is,pr,parzen --num_samples 50000 --out scores.json

Errors a user can make (no file, not a checkpoint, a checkpoint of another package, a ``--model`` that
does not match the checkpoint) end the program with one line on stderr and exit status 2, not a
traceback.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_only

__all__ = ["EvaluationError", "evaluate_checkpoint", "load_generator_checkpoint", "main"]

PROG = "python -m lightning_gan.evaluate"
_METRICS = ("fid", "kid", "is", "pr", "parzen", "ais")
_LIKELIHOODS = ("parzen", "ais")


class EvaluationError(Exception):
    """A problem with the user's input, reported as one line (the checkpoint, the class, the options)."""


def load_generator_checkpoint(path: str | os.PathLike, model: Optional[str] = None) -> pl.LightningModule:
    """Loads a checkpoint written by a ``lightning_gan`` module, on the CPU.

    Args:
        path: The ``.ckpt`` file.
        model: Import path of its class (``lightning_gan.DCGAN``, ``mypackage.MyGAN``); needed only for
            checkpoints that do not record it. When both are known they must agree.

    Raises:
        EvaluationError: No such file; not a checkpoint; a checkpoint of another package; a class that
            differs from the recorded one or cannot be imported; weights that do not fit the class.
    """
    path = Path(path)
    if not path.is_file():
        raise EvaluationError(f"checkpoint {str(path)!r} does not exist or is not a file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle, zip or weights-only errors: all mean "not one of ours"
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise EvaluationError(f"{str(path)!r} is not a checkpoint this package can read ({first[:200]})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise EvaluationError(f"{str(path)!r} is not a Lightning checkpoint (it has no 'state_dict')")
    recorded = (checkpoint.get("lightning_gan") or {}).get("class")
    if recorded is None and model is None:
        raise EvaluationError(
            f"{str(path)!r} records no lightning_gan class (a checkpoint of another package, or of an older version "
            "of this one): name its class with --model, e.g. --model lightning_gan.DCGAN"
        )
    if recorded is not None and model is not None and _short(model) != _short(recorded) and model != recorded:
        raise EvaluationError(f"--model {model} does not match the checkpoint, which was written by {recorded}")
    cls = _import_class(model if recorded is None else recorded)
    if not (isinstance(cls, type) and issubclass(cls, pl.LightningModule)) or not callable(getattr(cls, "generate", None)):
        raise EvaluationError(f"{cls!r} is not a LightningModule with a `generate(n)` method (a lightning_gan.GAN)")
    try:
        return cls.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise EvaluationError(f"the checkpoint does not load into {cls.__module__}.{cls.__qualname__}: {first[:300]}") from None


def evaluate_checkpoint(
    checkpoint: str | os.PathLike,
    datamodule: pl.LightningDataModule,
    metrics: Sequence[str] = ("fid", "kid", "is", "pr"),
    num_samples: int = 50000,
    batch_size: int = 250,
    model: Optional[str] = None,
    real_images: str = "val",
    feature_extractor: Any = "inception-v3-compat",
    weights_path: Optional[str] = None,
    value_range: tuple[float, float] = (-1.0, 1.0),
    cache_dir: Optional[str] = None,
    seed: int = 0,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    is_splits: int = 10,
    pr_k: int = 3,
    parzen_samples: int = 10000,
    ais_points: int = 100,
    ais_steps: int = 1000,
    ais_chains: int = 16,
    ais_bdmc_points: int = 16,
    accelerator: str = "auto",
    devices: Any = "auto",
    progress: bool = True,
) -> dict[str, Any]:
    """Scores a checkpoint and returns ``{"metrics": {...}, "protocol": {...}}`` (the JSON the CLI writes).

    Uses a ``Trainer`` only to place the model and data on the devices (``gan_ddp`` across several):
    the callers need not write one. Arguments are those of
    :class:`~lightning_gan.callbacks.GenerativeMetricsCallback`; ``"parzen"`` in ``metrics`` adds the
    Parzen-window log-likelihood of the validation data (``parzen_samples`` centres, sigma chosen on
    that data, in [0, 1]-pixel units); ``"ais"`` the AIS log-likelihood of the first ``ais_points``
    validation points (``ais_steps`` distributions, ``ais_chains`` chains, sigma chosen on those points, in
    [0, 1]-pixel units) and the BDMC gap of that schedule on ``ais_bdmc_points`` simulated points.
    """
    from lightning_gan import __version__
    from lightning_gan.callbacks.ais import AISLikelihoodCallback
    from lightning_gan.callbacks.generative_metrics import GenerativeMetricsCallback
    from lightning_gan.callbacks.likelihood import ParzenLikelihoodCallback

    unknown = [m for m in metrics if m not in _METRICS]
    if unknown or not metrics:
        raise EvaluationError(f"--metrics takes names from {','.join(_METRICS)}, got {','.join(metrics) or 'nothing'}")
    module = load_generator_checkpoint(checkpoint, model)
    image_metrics = tuple(m for m in metrics if m not in _LIKELIHOODS)
    callbacks: list[pl.Callback] = []
    scorer = None
    if image_metrics:
        try:
            scorer = GenerativeMetricsCallback(
                metrics=image_metrics, num_samples=num_samples, feature_extractor=feature_extractor,
                weights_path=weights_path, batch_size=batch_size, real_images=real_images, cache_dir=cache_dir,
                dataset_name=type(datamodule).__name__ if cache_dir else None, seed=seed, value_range=value_range,
                kid_subsets=kid_subsets, kid_subset_size=min(kid_subset_size, num_samples), is_splits=is_splits,
                pr_k=pr_k,
            )
        except (TypeError, ValueError) as error:
            raise EvaluationError(str(error)) from None
        callbacks.append(scorer)
    parzen = None
    if "parzen" in metrics:
        parzen = ParzenLikelihoodCallback(num_samples=parzen_samples, batch_size=batch_size, value_range=value_range)
        callbacks.append(parzen)
    ais = None
    if "ais" in metrics:
        ais = AISLikelihoodCallback(num_points=ais_points, num_steps=ais_steps, num_chains=ais_chains,
                                    bdmc_points=ais_bdmc_points, batch_size=min(batch_size, 100),
                                    value_range=value_range, seed=seed)
        callbacks.append(ais)
    trainer = pl.Trainer(
        accelerator=accelerator,
        devices=devices,
        strategy="gan_ddp" if _device_count(accelerator, devices) > 1 else "auto",
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        callbacks=callbacks,
    )
    bar = None
    if scorer is not None and progress and trainer.is_global_zero:
        from tqdm.auto import tqdm

        share = num_samples // trainer.world_size + (1 if num_samples % trainer.world_size else 0)
        bar = tqdm(total=share, desc="samples (rank 0)", unit="img", file=sys.stderr)
        scorer.progress = bar.update
    try:
        trainer.validate(module, datamodule=datamodule, verbose=False)
    finally:
        if bar is not None:
            bar.close()
    values: dict[str, float] = {}
    protocol: dict[str, Any] = {
        "checkpoint": str(Path(checkpoint).resolve()),
        "class": f"{type(module).__module__}.{type(module).__qualname__}",
        "generator": "ema" if getattr(module, "generator_ema", None) is not None else "raw",
        "global_step": int(torch.load(checkpoint, map_location="cpu", weights_only=True).get("global_step", -1)),
        "data": type(datamodule).__name__,
        "world_size": trainer.world_size,
        "package_version": __version__,
        "torch_fidelity_version": importlib.import_module("torch_fidelity").__version__,
        "seed": seed,
    }
    if scorer is not None:
        values.update({k.removeprefix("val/"): v for k, v in scorer.last_values.items()})
        protocol.update(scorer.protocol)
        protocol.update(kid_subsets=kid_subsets, kid_subset_size=min(kid_subset_size, num_samples), is_splits=is_splits,
                        pr_k=pr_k, batch_size=batch_size)
    if parzen is not None and "val" in parzen.results:
        result = parzen.results["val"]
        values["parzen_log_likelihood"] = float(result["best_log_likelihood"])
        values["parzen_stderr"] = float(result["best_stderr"])
        values["parzen_sigma"] = float(result["best_sigma"])
        protocol["parzen"] = {
            "num_samples": parzen_samples,
            "sigmas": [float(s) for s in result["sigmas"]],
            "data": "validation split, sigma chosen on it",
            "units": "pixels in [0, 1]",
        }
    if ais is not None and "val" in ais.results:
        result = ais.results["val"]
        values["ais_log_likelihood"] = float(result["best_log_likelihood"])
        values["ais_stderr"] = float(result["best_stderr"])
        values["ais_sigma"] = float(result["best_sigma"])
        if "bdmc_gap" in result:
            values["ais_bdmc_gap"] = float(result["bdmc_gap"])
        protocol["ais"] = {
            "num_points": int(result["num_points"]),
            "num_steps": ais_steps,
            "num_chains": ais_chains,
            "leapfrog_steps": int(result["leapfrog_steps"]),
            "schedule": "sigmoid, radius 4",
            "sigmas": [float(s) for s in result["sigmas"]],
            "acceptance_rate": float(result["acceptance_rate"][int(result["log_likelihood"].argmax())]),
            "bdmc_points": ais_bdmc_points,
            "data": "first points of the validation split in index order, sigma chosen on them",
            "units": "nats, pixels in [0, 1]",
        }
    return {"metrics": values, "protocol": protocol}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The command line; returns the exit status (0, or 2 after a one-line error)."""
    from jsonargparse import ArgumentParser

    import lightning_gan.data  # noqa: F401  (registers the package's data modules for short --data names)

    parser = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0], exit_on_error=False)
    parser.add_argument("checkpoint", type=str, help="The .ckpt file to score.")
    parser.add_subclass_arguments(pl.LightningDataModule, "data", required=True, help="The real data.")
    parser.add_argument("--model", type=Optional[str], default=None, help="Class of an older checkpoint.")
    parser.add_argument("--metrics", type=str, default="fid,kid,is,pr", help=f"Comma-separated, from {','.join(_METRICS)}.")
    parser.add_argument("--num_samples", type=int, default=50000, help="Generated samples (all devices).")
    parser.add_argument("--batch_size", type=int, default=250)
    parser.add_argument("--real_images", type=str, default="val", help="'val' or 'train': the real set.")
    parser.add_argument("--feature_extractor", type=str, default="inception-v3-compat",
                        help="A torch-fidelity extractor name, 'small' (smoke runs) or package.module.Class.")
    parser.add_argument("--weights_path", type=Optional[str], default=None)
    parser.add_argument("--value_range", type=tuple[float, float], default=(-1.0, 1.0))
    parser.add_argument("--cache_dir", type=Optional[str], default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kid_subsets", type=int, default=100)
    parser.add_argument("--kid_subset_size", type=int, default=1000)
    parser.add_argument("--is_splits", type=int, default=10)
    parser.add_argument("--pr_k", type=int, default=3)
    parser.add_argument("--parzen_samples", type=int, default=10000)
    parser.add_argument("--ais_points", type=int, default=100, help="Validation points scored by AIS.")
    parser.add_argument("--ais_steps", type=int, default=1000, help="AIS intermediate distributions.")
    parser.add_argument("--ais_chains", type=int, default=16)
    parser.add_argument("--ais_bdmc_points", type=int, default=16, help="Simulated points for the BDMC gap (0: none).")
    parser.add_argument("--accelerator", type=str, default="auto")
    parser.add_argument("--devices", type=str, default="auto")
    parser.add_argument("--out", type=Optional[str], default=None, help="JSON file (default: CKPT with .json).")
    parser.add_argument("--progress", type=bool, default=True)
    try:
        config = parser.parse_args(argv)
        init = parser.instantiate_classes(config)
    except Exception as error:  # jsonargparse reports bad options as exceptions here
        print(f"{PROG}: error: {str(error).strip().splitlines()[0]}", file=sys.stderr)
        return 2
    from lightning_gan.metrics.small import build_feature_extractor

    try:
        extractor = build_feature_extractor(config.feature_extractor)
        result = evaluate_checkpoint(
            config.checkpoint, init.data, metrics=[m.strip() for m in config.metrics.split(",") if m.strip()],
            num_samples=config.num_samples, batch_size=config.batch_size, model=config.model,
            real_images=config.real_images, feature_extractor=extractor, weights_path=config.weights_path,
            value_range=tuple(config.value_range), cache_dir=config.cache_dir, seed=config.seed,
            kid_subsets=config.kid_subsets, kid_subset_size=config.kid_subset_size, is_splits=config.is_splits,
            pr_k=config.pr_k, parzen_samples=config.parzen_samples, ais_points=config.ais_points,
            ais_steps=config.ais_steps, ais_chains=config.ais_chains, ais_bdmc_points=config.ais_bdmc_points,
            accelerator=config.accelerator,
            devices=_parse_devices(config.devices), progress=config.progress,
        )
    except EvaluationError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, ImportError) as error:
        if type(error).__name__.endswith("WeightsNotFoundError") or isinstance(error, ValueError):
            print(f"{PROG}: error: {str(error).strip().splitlines()[0]}", file=sys.stderr)
            return 2
        raise
    if rank_zero_only.rank == 0:  # the global rank, set by the strategy in every process (multi-node too)
        out = Path(config.out) if config.out else Path(config.checkpoint).with_suffix(".json")
        out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
        for name, value in result["metrics"].items():
            print(f"{name}: {value:.6g}")
        print(f"wrote {out}")
    return 0


# ---------------------------------------------------------------------------------------------- helpers


def _short(name: str) -> str:
    return name.rpartition(".")[2]


def _import_class(path: str) -> Any:
    module_name, _, name = path.rpartition(".")
    if not module_name:
        module_name = "lightning_gan"  # `--model DCGAN` for the package's own presets
    try:
        return getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as error:
        raise EvaluationError(f"cannot import the model class {path!r}: {error}") from None


def _parse_devices(devices: str) -> Any:
    text = str(devices).strip()
    return int(text) if text.lstrip("-").isdigit() else text


def _device_count(accelerator: str, devices: Any) -> int:
    if isinstance(devices, int):
        return devices if devices > 0 else (torch.cuda.device_count() or 1)
    if isinstance(devices, str) and "," in devices:
        return len([d for d in devices.split(",") if d.strip()])
    if devices in ("auto", -1) and accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return torch.cuda.device_count()
    return 1


if __name__ == "__main__":
    sys.exit(main())

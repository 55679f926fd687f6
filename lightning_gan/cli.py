"""The command line of the package: ``lightning-gan fit|validate|test|evaluate`` (LightningCLI with GAN defaults).

    lightning-gan fit --devices 4                          # DCGAN on MNIST on 4 GPUs ("gan_ddp")
    lightning-gan fit --accelerator cpu --devices 2        # DDP over 2 CPU processes
    lightning-gan fit --config examples/configs/mnist_dcgan.yaml
    lightning-gan fit --model WGANGP --model.lr_g 2e-4 --model.n_critic 5
    lightning-gan fit --model my_package.MyGAN             # your own GAN subclass (takes `image_shape`)
    lightning-gan fit --logger wandb                       # Weights & Biases (offline without a key)
    lightning-gan fit --ckpt_path last                     # resume the most recent run's last checkpoint
    lightning-gan test --ckpt_path last                    # test metrics of that checkpoint
    lightning-gan evaluate CKPT --data ... --metrics fid   # python -m lightning_gan.evaluate
    lightning-gan fit --print_config > my_run.yaml         # the whole configuration, to edit and rerun

Every argument of the Trainer (`--trainer.*`), the model (`--model.*`, e.g. `--model.lr_g`) and the data module
(`--data.*`, e.g. `--data.data_dir`) is a flag and a key of a YAML config (LightningCLI). Short forms:
`--devices`, `--accelerator`, `--num_nodes`, `--max_steps`, `--max_epochs`, `--precision` stand for
`--trainer.<same>`, and `--logger wandb|csv|tensorboard|none` for `--trainer.logger WandbLogger|CSVLogger|...`
(all of them under ./lightning_logs). Without a logger, Lightning's default (TensorBoard if installed, else CSV).
The data's image shape is passed to the model: never type 28. A class-conditional model (`--model ConditionalGAN`)
takes the data's number of classes the same way; `--model SNGAN --model.num_classes 10` is the projection cGAN.
Without a subcommand, ``fit``. A project uses it with its own defaults via :func:`main`.

Defaults, each with its flags:

* a DCGAN keeping a moving average of its generator (`--model.ema_decay 0.999`), on MNIST (`--data.data_dir`);
* every epoch, the FID of that generator against the validation images (`--fid.*`), the Parzen-window
  log-likelihood of the validation images (`--parzen.*`) and a grid of samples (`--samples.*`);
* a DivergenceGuard that stops a run whose losses or weights go NaN or whose discriminator saturates (`--guard.*`);
* checkpoints of the last step and of the best FID in the run's own folder (`lightning_logs/version_N/checkpoints`
  with the default logger; `--checkpoint.*`: any ModelCheckpoint argument), so two runs never share one, and
  `--ckpt_path last` resumes the most recent run;
* more than one device: the GAN-aware DDP strategy "gan_ddp".

Without the InceptionV3 weights (offline) FID is turned off, with one line saying so; `--fid.feature_extractor small`
swaps in a tiny fixed random network for smoke tests (its numbers are not FIDs). Where only MNIST's test files are
at hand: `--data.train_split test --data.holdout 2000`.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import os
import socket
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pytorch_lightning as pl
import torch
import yaml
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from pytorch_lightning.utilities import rank_zero_only

from lightning_gan import GAN, GenerativeMetricsCallback, ImageSampler, ParzenLikelihoodCallback
from lightning_gan.callbacks.guard import DivergenceError, DivergenceGuard
from lightning_gan.metrics.fid import INCEPTION_NAME, InceptionWeightsNotFoundError, resolve_inception_weights
from lightning_gan._wandb import _prepare_wandb
from lightning_gan.metrics.small import build_feature_extractor

PROG = "lightning-gan"  # replaced by the script's name when run as a script (main(prog=...))
DEFAULT_MODEL = "lightning_gan.DCGAN"
DEFAULT_DATA = "lightning_gan.data.MNISTDataModule"
DEFAULT_EMA_DECAY = 0.999
# Set by rank 0 when it turns FID off, so the DDP processes it launches (which rerun this script) agree with it.
_FID_OFF_ENV = "LIGHTNING_GAN_EXAMPLE_FID_OFF"
_TRAINER_ALIASES = ("devices", "accelerator", "num_nodes", "max_steps", "max_epochs", "precision")
# `--logger NAME` -> the flags it stands for. Everything lands under ./lightning_logs: the file loggers' version_N
# folders, W&B's wandb/ folder (and the config.yaml Lightning saves in a W&B logger's save_dir).
_LOGGER_ALIASES = {
    "wandb": ["--trainer.logger", "WandbLogger", "--trainer.logger.save_dir", "lightning_logs"],
    "csv": ["--trainer.logger", "CSVLogger", "--trainer.logger.save_dir", "."],
    "tensorboard": ["--trainer.logger", "TensorBoardLogger", "--trainer.logger.save_dir", "."],
    "none": ["--trainer.logger", "false"],
}


# ----------------------------------------------------------------------------------------------- options


@dataclass
class FIDOptions:
    """FID of the generator (its moving average when the model keeps one) against the validation images.

    Args:
        enabled: Compute the FID (turned off, with a message, when the InceptionV3 weights cannot be found).
        feature_extractor: "inception-v3-compat" (the FID everyone reports; needs the InceptionV3 weights),
            "small" (a tiny conv net with fixed random weights: for offline smoke tests only, its numbers are not
            FIDs), or the import path of an nn.Module class, built without arguments, mapping images to (N, d).
        weights_path: A local copy of the InceptionV3 weights (else LIGHTNING_GAN_INCEPTION_WEIGHTS, torch hub's
            cache, or a download).
        num_samples: Generated samples per evaluation, over all processes (10000 or 50000 for reported numbers).
        batch_size: Samples generated and embedded at a time.
        every_n_epochs: Evaluate every this many epochs.
        cache_dir: Keep the real images' statistics here, so later runs skip embedding them (None: no cache).
        metrics: What to log from the one feature pass: any of fid, kid, is (Inception Score), pr
            (precision/recall), e.g. --fid.metrics '[fid,kid,is,pr]'.
    """

    enabled: bool = True
    feature_extractor: str = INCEPTION_NAME
    weights_path: Optional[str] = None
    num_samples: int = 10000
    batch_size: int = 250
    every_n_epochs: int = 1
    cache_dir: Optional[str] = None
    metrics: tuple[str, ...] = ("fid",)


@dataclass
class ParzenOptions:
    """Parzen-window log-likelihood of the validation images under generated samples (a coverage measure).

    Args:
        enabled: Compute it.
        num_samples: Generated samples used as window centres, over all processes.
        batch_size: Samples per generate call.
        every_n_epochs: Evaluate every this many epochs.
    """

    enabled: bool = True
    num_samples: int = 10000
    batch_size: int = 1000
    every_n_epochs: int = 1


@dataclass
class SampleGridOptions:
    """A grid of samples from fixed latents, logged every few training epochs (W&B image, TensorBoard, or PNG).

    Args:
        enabled: Log the grid.
        num_samples: Images in the grid.
        nrow: Images per row.
        every_n_epochs: Log every this many epochs.
    """

    enabled: bool = True
    num_samples: int = 64
    nrow: int = 8
    every_n_epochs: int = 1


# ----------------------------------------------------------------------------------------------- the CLI


class LoggerSaveConfigCallback(SaveConfigCallback):
    """Saves ``config.yaml`` in the log directory, and hands the whole configuration to every logger as well."""

    def save_config(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        config = yaml.safe_load(self.parser.dump(self.config, skip_none=False))
        for logger in trainer.loggers:
            logger.log_hyperparams({"cli": config})


class GANCLI(LightningCLI):
    """LightningCLI for the package's GANs: two-pass parsing of the model/data classes, the example's callbacks."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--ckpt_path",
            type=Optional[str],
            default=None,
            help="Resume (or validate/test) this checkpoint; 'last': the most recent run's last checkpoint.",
        )
        parser.add_class_arguments(FIDOptions, "fid")
        parser.add_class_arguments(ParzenOptions, "parzen")
        parser.add_class_arguments(SampleGridOptions, "samples")
        parser.add_class_arguments(ModelCheckpoint, "checkpoint")
        parser.add_class_arguments(DivergenceGuard, "guard", instantiate=False)
        parser.add_argument(
            "--guard.enabled", type=bool, default=True, help="Stop training when it diverges (DivergenceGuard)."
        )
        parser.set_defaults(
            {
                "model": {"class_path": DEFAULT_MODEL},
                "data": {"class_path": DEFAULT_DATA},
                "checkpoint.monitor": "val/fid",
                "checkpoint.mode": "min",
                "checkpoint.save_last": True,
            }
        )
        # The model is built after the data module and takes its image shape from it.
        parser.link_arguments("data.image_shape", "model.init_args.image_shape", apply_on="instantiate")

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        # jsonargparse keeps the default class's init_args when another class is chosen (`--model WGANGP` would train
        # a WGANGP with DCGAN's loss, learning rates and n_critic: jsonargparse issue 460). So parse once to learn
        # the chosen classes, make them the defaults, and parse again: their own defaults then apply.
        argv = sys.argv[1:] if args is None else args
        if isinstance(argv, Sequence) and not isinstance(argv, str):
            argv = list(argv)
            probe = parser.parse_args([a for a in argv if not a.startswith("--print_config")])
            defaults: dict[str, Any] = {"data": {"class_path": probe.data.class_path}}
            model_class = _import(probe.model.class_path)
            model_default: dict[str, Any] = {"class_path": probe.model.class_path}
            parameters = inspect.signature(model_class).parameters
            if "ema_decay" in parameters:
                model_default["init_args"] = {"ema_decay": DEFAULT_EMA_DECAY}
            defaults["model"] = model_default
            parser.set_defaults(defaults)
            # A model that is always class-conditional (ConditionalGAN: `num_classes` defaults to a number) learns
            # the data's classes, as it learns the image shape, unless `--model.num_classes` says otherwise (a
            # link would silently override it). One where conditioning is optional (SNGAN: `num_classes=None`)
            # stays unconditional unless `--model.num_classes` is given.
            if "num_classes" in parameters and parameters["num_classes"].default is not None:
                init_args = probe.model.get("init_args") or {}
                if init_args.get("num_classes", parameters["num_classes"].default) == parameters["num_classes"].default:
                    parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")
        super().parse_arguments(parser, args)

    def before_instantiate_classes(self) -> None:
        config = self.config
        trainer = config.trainer
        self._notes: list[str] = []  # said once the data is known to be there
        if trainer.strategy == "auto" and _process_count(trainer) > 1:
            trainer.strategy = "gan_ddp"  # Lightning would pick "ddp", which cannot train a GAN
        # checkpoint.dirpath stays None: Lightning then writes in the run's own folder (the logger's version_N).
        if config.fid.enabled:
            self._check_fid_weights()
        if not config.fid.enabled and config.checkpoint.monitor == "val/fid":
            config.checkpoint.monitor = None  # keeps the last checkpoint only
        note = _prepare_wandb(trainer.logger)
        if note:
            self._notes.append(note)

    def _check_fid_weights(self) -> None:
        """Turns FID off, with a note, when the InceptionV3 weights are neither on disk nor downloadable."""
        fid = self.config.fid
        if fid.feature_extractor not in (INCEPTION_NAME, "inception"):
            return
        if os.environ.get(_FID_OFF_ENV) == "1" and _process_rank() > 0:
            fid.enabled = False  # rank 0 already said why
            return
        try:
            with _socket_timeout(30):
                resolve_inception_weights(fid.weights_path)
        except InceptionWeightsNotFoundError as error:
            fid.enabled = False
            os.environ[_FID_OFF_ENV] = "1"
            self._notes.append(
                f"FID is off: {error} (here: --fid.weights_path FILE; --fid.feature_extractor small for a smoke "
                "test). Checkpoints keep the last step only."
            )

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        # The data first: without it nothing else matters, and its one line should be the only one. One process
        # per node checks (and downloads); the others wait for it in Lightning's barrier before `setup`.
        if _local_rank() == 0:
            check_data(self.datamodule, self.config.data)
        for note in self._notes:
            _say(note)
        configured = self.config_init.trainer.get("callbacks") or []
        callbacks = list(configured) if isinstance(configured, list) else [configured]
        kwargs["callbacks"] = callbacks + self._default_callbacks()
        return super().instantiate_trainer(**kwargs)

    def _default_callbacks(self) -> list[Callback]:
        config, init = self.config, self.config_init
        callbacks: list[Callback] = []
        if config.fid.enabled:
            fid = config.fid
            callbacks.append(
                GenerativeMetricsCallback(
                    metrics=tuple(fid.metrics),
                    kid_subset_size=min(1000, fid.num_samples),
                    num_samples=fid.num_samples,
                    every_n_epochs=fid.every_n_epochs,
                    feature_extractor=build_feature_extractor(fid.feature_extractor),
                    weights_path=fid.weights_path,
                    batch_size=fid.batch_size,
                    cache_dir=fid.cache_dir,
                    dataset_name=_dataset_name(config.data) if fid.cache_dir else None,
                )
            )
        if config.parzen.enabled:
            parzen = config.parzen
            callbacks.append(
                ParzenLikelihoodCallback(
                    num_samples=parzen.num_samples, every_n_epochs=parzen.every_n_epochs, batch_size=parzen.batch_size
                )
            )
        if config.samples.enabled:
            grid = config.samples
            callbacks.append(
                ImageSampler(num_samples=grid.num_samples, nrow=grid.nrow, every_n_epochs=grid.every_n_epochs)
            )
        if config.guard.enabled:
            options = {k: v for k, v in config.guard.items() if k != "enabled"}
            callbacks.append(DivergenceGuard(**options))
        if config.trainer.enable_checkpointing is not False:
            callbacks.append(init.checkpoint)
        return callbacks


# ----------------------------------------------------------------------------------------------- helpers


def expand_aliases(argv: Sequence[str]) -> list[str]:
    """``--devices 4`` -> ``--trainer.devices 4``; ``--logger wandb`` -> ``--trainer.logger WandbLogger``; and so on.

    ``--logger csv|tensorboard`` also set ``--trainer.logger.save_dir .`` (those loggers need one), ``--logger wandb``
    ``--trainer.logger.save_dir lightning_logs``: every logger then writes under ./lightning_logs.
    """
    out: list[str] = []
    items = list(argv)
    i = 0
    while i < len(items):
        arg = items[i]
        name, eq, value = arg.partition("=")
        key = name[2:] if name.startswith("--") else None
        if key in _TRAINER_ALIASES or key == "logger":
            if not eq:
                if i + 1 >= len(items):
                    out.append(arg)  # let the parser complain about the missing value
                    break
                value = items[i + 1]
                i += 1
            if key == "logger":
                out += _LOGGER_ALIASES.get(value.lower(), ["--trainer.logger", value])
            else:
                out += [f"--trainer.{key}", value]
        else:
            out.append(arg)
        i += 1
    return out


def _import(path: str) -> Any:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _process_rank() -> int:
    return int(rank_zero_only.rank or 0)


def _local_rank() -> int:
    """This process's rank on its node: set by Lightning's launcher, torchrun or SLURM; 0 when started by hand."""
    return int(os.environ.get("LOCAL_RANK", os.environ.get("SLURM_LOCALID", "0")) or 0)


def _say(message: str) -> None:
    """One line on stderr, from the first process only."""
    if _process_rank() == 0:
        print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def _process_count(trainer: Any) -> int:
    """How many processes the Trainer configuration asks for (devices per node x nodes)."""
    accelerator = str(trainer.accelerator).lower() if isinstance(trainer.accelerator, str) else "custom"
    devices = trainer.devices
    if isinstance(devices, str):
        text = devices.strip()
        if "," in text:
            devices = [part for part in text.split(",") if part.strip()]
        elif text.lstrip("-").isdigit():
            devices = int(text)
    if isinstance(devices, (list, tuple)):
        per_node = len(devices)
    elif isinstance(devices, int) and devices >= 0:
        per_node = devices
    else:  # "auto" or -1: every device of the accelerator
        gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
        per_node = torch.cuda.device_count() if gpu else 1
    return max(per_node, 1) * max(int(trainer.num_nodes or 1), 1)


def _dataset_name(data: Any) -> str:
    """Names the real (validation) images in the FID cache key: the data class and everything that cuts the split."""
    args = data.init_args
    parts = [data.class_path.rpartition(".")[2]]
    for key in ("train_split", "holdout", "val_size", "seed"):
        if key in args:
            parts.append(f"{key}={args[key]}")
    return "-".join(parts)


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """A default socket timeout, so a download on a network that drops packets fails instead of hanging."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def check_data(datamodule: pl.LightningDataModule, data_config: Any) -> None:
    """Downloads the data if allowed and loads it, or stops with one line saying what is missing and how to fix it."""
    args = data_config.init_args
    flags = (
        "point --data.data_dir at a folder holding the files (a torchvision root, its MNIST/ folder or MNIST/raw/); "
        "a folder with only the test files trains with --data.train_split test --data.holdout 2000"
    )
    try:
        # torchvision prints every mirror it tries; keep its chatter out of the one line below.
        with _socket_timeout(30), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            datamodule.prepare_data()
    except Exception as error:  # torchvision raises RuntimeError, urllib URLError/OSError, ...
        reason = " ".join(str(error).split())
        raise SystemExit(
            f"{PROG}: the data is not in {args.get('data_dir')} and could not be downloaded "
            f"({type(error).__name__}: {reason}). Download it where there is network access and {flags}."
        ) from None
    try:
        datamodule.setup("fit")
    except FileNotFoundError as error:
        download = "" if args.get("download", True) else "--data.download true to download it, or "
        raise SystemExit(f"{PROG}: {' '.join(str(error).split())} On the command line: {download}{flags}.") from None


_SUBCOMMANDS = ("fit", "validate", "test")


def main(args: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> GANCLI:
    """Parses the command line (``args`` or ``sys.argv``), runs its subcommand, and returns the CLI.

    The first argument may be ``fit`` (the default), ``validate`` or ``test``. A project's own script is
    ``from lightning_gan.cli import main; main(prog="train.py")`` with its model and data given by flags
    or a config (``--model my_package.MyGAN``).
    """
    global PROG
    if prog is not None:
        PROG = prog
    argv = list(sys.argv[1:] if args is None else args)
    command = argv.pop(0) if argv and argv[0] in _SUBCOMMANDS else "fit"
    argv = expand_aliases(argv)
    if args is None:
        # Rewritten in place rather than passed as `args`: DDP processes rerun this script with sys.argv.
        sys.argv[1:] = [command, *argv]
    cli = GANCLI(
        model_class=GAN,
        datamodule_class=pl.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        # The module owns its two optimizers (generator's, discriminator's); --model.lr_g / lr_d set them.
        auto_configure_optimizers=False,
        save_config_callback=LoggerSaveConfigCallback,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={"max_epochs": 20},
        seed_everything_default=0,
        parser_kwargs={"prog": PROG, "description": __doc__},
        args=argv,
        run=False,
    )
    ckpt_path = _resolve_last(cli.config.ckpt_path, cli.trainer, cli.config.checkpoint.dirpath)
    try:
        getattr(cli.trainer, command)(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt_path)
    except DivergenceError as error:  # the guard's message says where, what, and the last good checkpoint
        raise SystemExit(f"{PROG}: {error}") from None
    if command != "fit":
        return cli
    checkpoint = cli.trainer.checkpoint_callback
    summary = f"stopped at generator step {cli.trainer.global_step}"
    if isinstance(checkpoint, ModelCheckpoint) and checkpoint.last_model_path:
        summary += f"; last checkpoint {checkpoint.last_model_path}"
        if checkpoint.monitor and checkpoint.best_model_path and checkpoint.best_model_score is not None:
            best = float(checkpoint.best_model_score)
            summary += f"; best {checkpoint.monitor} {best:.4g} in {checkpoint.best_model_path}"
    _say(summary)
    return cli


def _resolve_last(ckpt_path: Optional[str], trainer: pl.Trainer, dirpath: Optional[str]) -> Optional[str]:
    """``last`` -> the newest ``last*.ckpt`` of any run under the root directory, said in one line.

    Each run writes its checkpoints in its own folder (``lightning_logs/version_N/checkpoints``, or the W&B run's),
    where Lightning's own ``"last"`` would look only in the new run's, still empty, folder.
    """
    if ckpt_path != "last":
        return ckpt_path
    root = Path(trainer.default_root_dir or os.getcwd())
    folders = [Path(dirpath)] if dirpath else []
    folders += [root / "checkpoints", *root.glob("lightning_logs/**/checkpoints")]
    candidates = [f for folder in folders if folder.is_dir() for f in folder.glob("last*.ckpt")]
    if not candidates:
        raise SystemExit(
            f"{PROG}: --ckpt_path last found no last*.ckpt under {root / 'lightning_logs'} (any run) or {root / 'checkpoints'}; "
            "pass the checkpoint's path."
        )
    newest = str(max(candidates, key=lambda f: f.stat().st_mtime))
    # The DDP processes rank 0 launches rerun this command line: they must resume the same file.
    for i, arg in enumerate(sys.argv):
        if arg == "--ckpt_path=last" or (arg == "last" and i > 0 and sys.argv[i - 1] == "--ckpt_path"):
            sys.argv[i] = f"--ckpt_path={newest}" if arg.startswith("--") else newest
    _say(f"resuming from {newest} (the most recent run's last checkpoint)")
    return newest


def run() -> None:
    """The ``lightning-gan`` console script: ``fit``, ``validate``, ``test`` (LightningCLI) or ``evaluate``."""
    if len(sys.argv) > 1 and sys.argv[1] == "evaluate":
        from lightning_gan.evaluate import main as evaluate

        raise SystemExit(evaluate(sys.argv[2:]))
    main()


if __name__ == "__main__":
    run()

"""`ppad train`: the official recipe's loop with exact resume and torchrun (DDP) support.

Every epoch is a pure function of (seed, epoch, state at its start): data order, augmentation and the
denoising noise are reseeded from (seed, epoch), and the complete state (model, EMA, optimizer,
scaler, counters) is written atomically after each epoch, and with `save_every_iters` also inside one
(with the iterations done, the epoch's loss sums and the noise generator's state; the resumed epoch skips
the samples already seen). A run killed at any point and resumed with `--resume` therefore ends with the
same weights as an uninterrupted one.
"""

from __future__ import annotations

import copy
import csv
import math
import os
import time
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.distributed as dist
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ppad_core.data.dataset import DrivingDataset, collate
from ppad_core.evaluate.evaluator import evaluate
from ppad_core.evaluate.metric_table import SELECTION, TRAINING, is_better, keys
from ppad_core.model.checkpoint import load_or_build, save_checkpoint
from ppad_core.model.rmt_ppad import RMTPPAD
from ppad_core.runtime.options import RuntimeOptions
from ppad_core.runtime.predictor import Predictor
from ppad_core.train.auxiliary import AuxiliaryLoss, AuxiliaryLossFactory
from ppad_core.train.config import TrainConfig
from ppad_core.train.losses import task_losses, total_loss

console = Console(stderr=True)
STATE_FILE = "last_state.pt"
# The run's randomness is a function of (config.seed, epoch, rank) alone, which is what makes resume exact:
# the data order of an epoch is seeded with seed * SEED_STRIDE + epoch, the denoising noise with
# seed * SEED_STRIDE + epoch * EPOCH_STRIDE + rank. Both strides are primes, so no two (seed, epoch) pairs
# of realistic runs share a stream.
SEED_STRIDE = 100_003
EPOCH_STRIDE = 7919
VALIDATION_BATCH = 8  # images per validation forward (memory only; the metrics do not depend on it)
LOGGED_METRICS = keys(TRAINING)  # validation metrics in the epoch log, results.csv and checkpoint provenance


class ModelEMA:
    """Exponential moving average of the weights with the official warm-up: d * (1 - exp(-updates / tau))."""

    def __init__(self, model: RMTPPAD, decay: float, tau: float) -> None:
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.decay, self.tau, self.updates = decay, tau, 0

    @torch.no_grad()
    def update(self, model: RMTPPAD) -> None:
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / self.tau))
        source = model.state_dict()
        for name, value in self.model.state_dict().items():
            if value.dtype.is_floating_point:
                value.mul_(d).add_(source[name].detach(), alpha=1 - d)
            else:
                value.copy_(source[name])


class EpochSampler(torch.utils.data.Sampler):
    """Seeded permutation per epoch, split across DDP ranks (padded to equal length)."""

    def __init__(self, size: int, seed: int, rank: int, world: int) -> None:
        self.size, self.seed, self.rank, self.world, self.epoch = size, seed, rank, world, 0
        self.skip = 0  # this rank's first samples of the epoch already trained on (a resumed epoch)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * SEED_STRIDE + self.epoch)
        order = torch.randperm(self.size, generator=generator).tolist()
        per_rank = math.ceil(self.size / self.world)
        order += order[: per_rank * self.world - self.size]
        return iter(order[self.rank :: self.world][self.skip :])

    def __len__(self) -> int:
        return math.ceil(self.size / self.world)


def _distributed() -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    rank = dist.get_rank() if world > 1 else 0
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu")


def _precision(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """Autocast dtype, or None for fp32."""
    choice = config.precision
    if choice == "auto":
        choice = "fp16" if device.type == "cuda" else "fp32"
    if choice == "fp16" and device.type != "cuda":
        raise ValueError("precision fp16 needs CUDA; use bf16 or fp32 on the CPU")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[choice]


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Decay on weights of convolutions, linear layers, embeddings (dim > 1); none on norms and biases."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class Trainer:
    """Trains `config.model` on `config.data`, plus any auxiliary loss terms it is given (e.g. distillation)."""

    def __init__(
        self,
        config: TrainConfig,
        run_dir: str | Path,
        resume: bool = False,
        progress: bool = True,
        auxiliary: Sequence[AuxiliaryLossFactory] = (),
    ) -> None:
        self.config, self.run_dir, self.progress = config, Path(run_dir), progress
        self.rank, self.world, self.device = _distributed()
        self.is_main = self.rank == 0
        if config.batch_size % self.world:
            raise ValueError(f"batch_size {config.batch_size} must be divisible by the {self.world} processes")
        torch.manual_seed(config.seed)
        self.model = self._initial_model().to(self.device)
        self.model_config = self.model.config
        self.ema = ModelEMA(self.model, config.ema.decay, config.ema.tau)
        # after the EMA copy, so only the trained student carries the terms' hooks
        self.auxiliary: list[AuxiliaryLoss] = [build(self.model) for build in auxiliary]
        self.autocast_dtype = _precision(config, self.device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.autocast_dtype == torch.float16)
        opt = config.optimizer
        decay = opt.weight_decay * config.batch_size / opt.nominal_batch
        groups = _param_groups(self.model, decay)
        for term in self.auxiliary:
            if any(True for _ in term.trainable.parameters()):
                groups += _param_groups(term.trainable, decay)
        if opt.name == "sgd":
            self.optimizer = torch.optim.SGD(groups, lr=opt.lr, momentum=opt.momentum, nesterov=True)
        else:
            self.optimizer = torch.optim.AdamW(groups, lr=opt.lr, betas=(opt.momentum, 0.999))
        self.train_set = DrivingDataset(
            config.data.root,
            config.data.train_split,
            self.model_config.input_size,
            self.model_config.num_classes,
            config.augment,
            config.seed,
            config.data.cache,
        )
        self.val_set = (
            DrivingDataset(
                config.data.root,
                config.data.val_split,
                self.model_config.input_size,
                self.model_config.num_classes,
                cache=False,
            )
            if self.is_main
            else None
        )
        self.sampler = EpochSampler(len(self.train_set), config.seed, self.rank, self.world)
        self.iters_per_epoch = math.ceil(len(self.sampler) / (config.batch_size // self.world))
        self.start_epoch, self.best_fitness, self.corrupt_seen = 0, -1.0, 0
        self.resume_within: dict | None = None  # where a state saved inside an epoch left that epoch
        self.history: list[dict] = []
        if resume:
            self._load_state()
        self.ddp = (
            torch.nn.parallel.DistributedDataParallel(self.model, find_unused_parameters=True)
            if self.world > 1
            else None
        )

    def _initial_model(self) -> RMTPPAD:
        return load_or_build(self.config.model)[0].train()

    # ----- state -----------------------------------------------------------------------------------------
    def _state(self, epoch: int, within: dict | None = None) -> dict:
        """The whole training state after `epoch`, or inside it when `within` says where (iteration, the epoch's
        loss sums so far, the random state of the denoising noise)."""
        return {
            "epoch": epoch,
            "within": within,
            "corrupt_seen": self.corrupt_seen,
            "model": self.model.state_dict(),
            "ema": self.ema.model.state_dict(),
            "ema_updates": self.ema.updates,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "best_fitness": self.best_fitness,
            "history": self.history,
            "model_config": self.model_config.to_dict(),
            "auxiliary": {term.name: term.trainable.state_dict() for term in self.auxiliary},
        }

    def _save_state(self, epoch: int, within: dict | None = None) -> None:
        target = self.run_dir / STATE_FILE
        tmp = target.with_suffix(".tmp")
        torch.save(self._state(epoch, within), tmp)
        os.replace(tmp, target)

    def _load_state(self) -> None:
        path = self.run_dir / STATE_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no training state to resume from")
        state = torch.load(path, map_location=self.device, weights_only=True)
        self.model.load_state_dict(state["model"])
        self.ema.model.load_state_dict(state["ema"])
        self.ema.updates = state["ema_updates"]
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        for term in self.auxiliary:
            term.trainable.load_state_dict(state["auxiliary"][term.name])
        self.best_fitness, self.history = state["best_fitness"], state["history"]
        self.corrupt_seen = state.get("corrupt_seen", 0)
        self.resume_within = state.get("within")
        self.start_epoch = state["epoch"] + (0 if self.resume_within else 1)
        if self.is_main and self.resume_within:
            iteration = self.resume_within["iteration"]
            # soft_wrap: one line however long the path, so logs stay greppable
            console.print(
                f"resuming {self.run_dir} in epoch {state['epoch'] + 1} after iteration {iteration}", soft_wrap=True
            )
        elif self.is_main:
            console.print(f"resuming {self.run_dir} after epoch {state['epoch'] + 1}", soft_wrap=True)

    # ----- schedule --------------------------------------------------------------------------------------
    def _set_lr(self, step: int) -> None:
        cfg, sched = self.config, self.config.schedule
        progress = step / self.iters_per_epoch
        factor = ((1 - math.cos(math.pi * progress / cfg.epochs)) / 2) * (sched.final_lr_ratio - 1) + 1
        warmup = max(round(sched.warmup_epochs * self.iters_per_epoch), sched.min_warmup_iters)
        ramp = min(1.0, step / warmup) if warmup > 0 else 1.0
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.optimizer.lr * factor * ramp
            if cfg.optimizer.name == "sgd":
                group["momentum"] = sched.warmup_momentum + (cfg.optimizer.momentum - sched.warmup_momentum) * ramp

    # ----- loop ------------------------------------------------------------------------------------------
    def fit(self) -> dict:
        cfg = self.config
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.is_main:
            (self.run_dir / "train.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        if cfg.data.cache:
            self.train_set.preload(progress=self.progress and self.is_main)
        writer = self._tensorboard()
        started = time.time()
        for epoch in range(self.start_epoch, cfg.epochs):
            losses = self._train_epoch(epoch)
            row = {"epoch": epoch + 1, **losses, "lr": self.optimizer.param_groups[0]["lr"]}
            last = epoch == cfg.epochs - 1
            if self.is_main and (last or (cfg.val_every and (epoch + 1) % cfg.val_every == 0)):
                metrics = self.validate()
                row.update({k: metrics[k] for k in LOGGED_METRICS})
                if is_better(SELECTION, metrics[SELECTION], self.best_fitness):
                    self.best_fitness = metrics[SELECTION]
                    self._save_checkpoint("best", epoch, metrics)
            if self.is_main:
                self.history.append(row)
                self._save_checkpoint("last", epoch, {k: row[k] for k in LOGGED_METRICS if k in row})
                self._save_state(epoch)
                self._log(row, writer)
            if self.world > 1:
                dist.barrier()
        if writer is not None:
            writer.close()
        summary = {
            "epochs": cfg.epochs,
            "minutes": (time.time() - started) / 60,
            "best_fitness": self.best_fitness,
            "final": self.history[-1] if self.history else {},
            "corrupt_skipped": self.corrupt_seen,
            "run_dir": str(self.run_dir),
        }
        if self.is_main:
            self._print_summary(summary)
        return summary

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        cfg = self.config
        torch.manual_seed(cfg.seed * SEED_STRIDE + epoch * EPOCH_STRIDE + self.rank)  # denoising noise of this epoch
        self.train_set.set_epoch(epoch)
        self.train_set.mosaic_enabled = cfg.augment.mosaic > 0 and epoch < cfg.epochs - cfg.close_mosaic
        within, self.resume_within = self.resume_within, None
        start = within["iteration"] if within else 0
        self.sampler.epoch, self.sampler.skip = epoch, start * (cfg.batch_size // self.world)
        loader = torch.utils.data.DataLoader(
            self.train_set,
            batch_size=cfg.batch_size // self.world,
            sampler=self.sampler,
            collate_fn=collate,
            num_workers=cfg.data.workers,
            drop_last=False,
        )
        batches_in = iter(loader)  # draws its workers' base seed from the global generator: before the restore
        if within:
            torch.set_rng_state(within["rng"])
        model = self.ddp or self.model
        model.train()
        sums: dict[str, float] = dict(within["sums"]) if within else {}
        batches = within["batches"] if within else 0
        columns = [
            TextColumn("epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.3f}"),
            TimeRemainingColumn(),
        ]
        with Progress(*columns, console=console, transient=True, disable=not (self.progress and self.is_main)) as bar:
            task = bar.add_task(
                "train", total=self.iters_per_epoch, completed=start, epoch=f"{epoch + 1}/{cfg.epochs}", loss=0.0
            )
            for i, batch in enumerate(batches_in, start=start):
                self.corrupt_seen += len(batch["corrupt"])
                if batch["images"] is not None:
                    self._set_lr(epoch * self.iters_per_epoch + i)
                    terms = self._step(model, batch)
                    batches += 1
                    for name, value in terms.items():
                        sums[name] = sums.get(name, 0.0) + value
                    bar.update(task, advance=1, loss=sums["loss"] / batches)
                done = i + 1
                if cfg.save_every_iters and done % cfg.save_every_iters == 0 and done < self.iters_per_epoch:
                    self._save_within(epoch, done, sums, batches)
        return {name: value / max(batches, 1) for name, value in sums.items()}

    def _save_within(self, epoch: int, iteration: int, sums: dict[str, float], batches: int) -> None:
        """The state after `iteration` iterations of `epoch` (main process; DDP ranks hold the same weights)."""
        if self.is_main:
            within = {"iteration": iteration, "sums": dict(sums), "batches": batches, "rng": torch.get_rng_state()}
            self._save_state(epoch, within)

    def _step(self, model, batch: dict) -> dict[str, float]:
        images = batch["images"].to(self.device, non_blocking=True).float() / 255.0
        masks = batch["masks"].to(self.device, non_blocking=True)
        targets = [{k: v.to(self.device) for k, v in t.items()} for t in batch["targets"]]
        autocast = torch.autocast(self.device.type, dtype=self.autocast_dtype) if self.autocast_dtype else nullcontext()
        with autocast:
            outputs = model(images, targets)
            extra = {term.name: term.loss(images) for term in self.auxiliary}
        loss, terms = total_loss(outputs, targets, masks, self.config.loss)
        for value in extra.values():
            loss = loss + value
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.ema.update(self.model)
        per_task = {f"loss_{k}": float(v.detach()) for k, v in {**task_losses(terms), **extra}.items()}
        return {"loss": float(loss.detach()), **per_task}

    def validate(self) -> dict:
        predictor = Predictor.from_model(self.ema.model, RuntimeOptions(device=str(self.device)))
        return evaluate(predictor, self.val_set, batch_size=VALIDATION_BATCH, progress=self.progress)

    # ----- outputs ---------------------------------------------------------------------------------------
    def _save_checkpoint(self, name: str, epoch: int, metrics: dict) -> None:
        provenance = {
            "kind": "trained",
            "epochs_completed": epoch + 1,
            "data": str(self.config.data.root),
            "seed": self.config.seed,
            "metrics": {k: round(float(v), 5) for k, v in metrics.items() if k in LOGGED_METRICS},
        }
        for term in self.auxiliary:
            provenance.update(term.provenance)
        save_checkpoint(self.ema.model, self.run_dir / name, provenance)

    def _tensorboard(self):
        if not self.is_main:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional; results.csv always exists
            return None
        return SummaryWriter(str(self.run_dir / "tensorboard"))

    def _log(self, row: dict, writer) -> None:
        path = self.run_dir / "results.csv"
        losses = ["loss", "loss_detection", "loss_drivable", "loss_lane"] + [f"loss_{t.name}" for t in self.auxiliary]
        columns = list(dict.fromkeys(["epoch", *losses, "lr", *LOGGED_METRICS]))
        with open(path, "w", newline="") as f:
            out = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
            out.writeheader()
            for r in self.history:
                out.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
        metrics = " ".join(f"{k}={row[k]:.3f}" for k in LOGGED_METRICS if k in row)
        console.print(f"epoch {row['epoch']}/{self.config.epochs} loss {row.get('loss', float('nan')):.3f} {metrics}")
        if writer is not None:
            for key, value in row.items():
                if key != "epoch" and isinstance(value, float):
                    writer.add_scalar(key, value, row["epoch"])

    def _print_summary(self, summary: dict) -> None:
        table = Table(title=f"training finished: {self.run_dir}")
        table.add_column("item")
        table.add_column("value", justify="right")
        table.add_row("epochs", str(summary["epochs"]))
        table.add_row("wall time", f"{summary['minutes']:.1f} min")
        for key in LOGGED_METRICS:
            if key in summary["final"]:
                table.add_row(f"final {key}", f"{summary['final'][key]:.4f}")
        table.add_row("best fitness", f"{summary['best_fitness']:.4f}")
        table.add_row("corrupt samples skipped", str(summary["corrupt_skipped"]))
        table.add_row("checkpoints", f"{self.run_dir / 'best'}, {self.run_dir / 'last'}")
        console.print(table)

"""The training loop: epochs of Adam steps, validation, LR decay, early stopping, checkpoints and the run folder.

Determinism: models are initialised from ``seed`` (torch's global generator is seeded, as upstream does); epoch ``e`` draws its excerpts with ``dataset.set_epoch(e)``,
shuffles with a generator seeded by ``(seed, e)`` and reseeds torch (dropout) with ``(seed, e, rank)``; the
checkpoint restores weights, optimizer, scheduler, scaler, early stopping and RNG states. A run killed after epoch
``k`` and resumed therefore ends with the same weights as an uninterrupted run (bit-exact on CPU).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, Subset

from unmix.evaluate.metrics import sdr
from unmix.train import builders, ddp, media
from unmix.train.checkpoint import (
    EarlyStopping,
    TrainState,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from unmix.train.config import TrainConfig, TrainingError
from unmix.train.losses import spectrogram_loss, waveform_loss
from unmix.train.run_folder import RunFolder

logger = logging.getLogger(__name__)

#: ``callback(trainer, epoch, row)``: runs after every epoch, once its files are written.
Callback = Callable[["Trainer", int, dict[str, Any]], None]


def _seed(*keys: int) -> int:
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0])


def _as_targets(y: Tensor) -> Tensor:
    """``y`` of a batch as ``(nb_samples, nb_targets, nb_channels, nb_timesteps)``."""
    return y.unsqueeze(1) if y.dim() == 3 else y


class LossModule(nn.Module):
    """Per-target losses of a batch (the module DistributedDataParallel wraps).

    Args:
        separator: the Separator holding the target models.
        config: the run's settings (loss, channels, AMP).
        device_type: ``"cpu"`` or ``"cuda"`` (for autocast).

    Shape:
        - ``x``: ``(nb_samples, nb_channels, nb_timesteps)``; ``y``: ``(nb_samples, nb_targets, nb_channels,
          nb_timesteps)``
        - output: ``(nb_targets,)``
    """

    def __init__(self, separator: nn.Module, config: TrainConfig, device_type: str) -> None:
        super().__init__()
        self.separator = separator
        self.encoder = builders.training_stft(config)
        self.loss = config.loss
        self.mono = config.nb_channels == 1
        self.end_to_end = config.end_to_end
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.amp or "")
        self.device_type = device_type

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed precision around the target models (a no-op without ``amp``)."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.amp_dtype)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        nb_targets = y.shape[1]
        if self.end_to_end:
            sep = self.separator
            mix_stft = sep.stft(x)
            with self.autocast():
                spectrograms = sep.estimate_spectrograms(mix_stft)
            estimates = sep.filter(spectrograms.float(), mix_stft)
            waveforms = sep.stft.inverse(estimates[:, :nb_targets], length=x.shape[-1])
            return waveform_loss(self.loss, waveforms, y)
        mix = self.encoder(x).abs()
        target = self.encoder(y).abs()  # (B, J, C, F, N)
        if self.mono:
            mix, target = mix.mean(1, keepdim=True), target.mean(2, keepdim=True)
        losses = []
        for j, model in enumerate(self.separator.target_models.values()):
            with self.autocast():
                estimate = model(mix)
            losses.append(spectrogram_loss(self.loss, estimate, target[:, j]))
        return torch.stack(losses)


@dataclass
class TrainResult:
    """Outcome of :meth:`Trainer.fit`: the folder, the epoch rows and the best epoch."""

    folder: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best_loss: float | None = None
    stopped_early: bool = False


class Trainer:
    """Train the target models of a config into a run folder.

    Args:
        config: every setting.
        folder: the run folder (created); an existing ``checkpoint/latest.pt`` is resumed when ``resume``.
        callbacks: called after every epoch with ``(trainer, epoch, row)``; an exception stops the run (the
            epoch's checkpoint is already written, so it can be resumed).
        resume: continue from ``checkpoint/latest.pt`` when present (False: start over, overwriting).
    """

    def __init__(
        self,
        config: TrainConfig,
        folder: str | os.PathLike[str],
        callbacks: Sequence[Callback] = (),
        resume: bool = True,
    ) -> None:
        self.config = config
        self.folder = RunFolder(folder)
        self.callbacks = list(callbacks)
        self.resume = resume
        self.context = ddp.DistributedContext()
        self.state = TrainState()
        self._ready = False

    # ------------------------------------------------------------------ setup

    def setup(self) -> None:
        """Build datasets, models, optimizer and scheduler; restore the latest checkpoint when resuming."""
        config = self.config
        self.context = ddp.init_distributed(config.device)
        device = self.context.device
        self.train_set, self.valid_set = builders.build_datasets(config)
        targets = builders.dataset_targets(self.train_set)
        if targets != config.targets:
            logger.info("targets %s (from the %s dataset)", targets, config.dataset)
            self.config = config = config.replace(targets=targets)
        self.sample_rate = float(self.train_set.sample_rate)
        checkpoint = None
        if self.resume and self.folder.latest.is_file():
            checkpoint = load_checkpoint(self.folder.latest)
            logger.info("resuming %s after epoch %d", self.folder.root, checkpoint["state"]["epoch"])
        stats = None
        if checkpoint is None and config.statistics and not config.model and config.architecture == "openunmix":
            logger.info("computing the input statistics over the training mixtures")
            stats = builders.input_statistics(config, self.train_set)
        self.models = builders.build_models(config, targets, self.sample_rate, stats)
        if checkpoint is not None:
            try:
                for target, model in self.models.items():
                    model.load_state_dict(checkpoint["models"][target])
            except (KeyError, RuntimeError) as err:
                raise TrainingError(
                    f"{self.folder.latest} does not match the configured models (targets {targets}): {err}; "
                    "restore the run's config.json or start over with --restart"
                ) from err
        self.separator = builders.build_separator(config, self.models, self.sample_rate).to(device)
        if config.compile:
            for model in self.models.values():
                model.compile()
        self.loss_module = LossModule(self.separator, config, device.type).to(device)
        self.train_module = ddp.wrap(self.loss_module, self.context)
        self.optimizer = torch.optim.Adam(self.separator.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, factor=config.lr_decay_gamma, patience=config.lr_decay_patience,
            cooldown=config.lr_decay_cooldown,
        )
        self.scaler = torch.amp.GradScaler(device.type, enabled=config.amp == "fp16")
        self.early_stopping = EarlyStopping(config.patience)
        self.state = TrainState()
        if checkpoint is not None:
            self.optimizer.load_state_dict(checkpoint["optimizer"])
            self.scheduler.load_state_dict(checkpoint["scheduler"])
            self.scaler.load_state_dict(checkpoint["scaler"])
            self.early_stopping.load_state_dict(checkpoint["early_stopping"])
            self.state = TrainState.from_state_dict(checkpoint["state"])
            restore_rng_state(checkpoint["rng"])
        self._make_loaders()
        if self.context.is_main:
            self.folder.make()
            config.save(self.folder.root)
            self.folder.write_separator_json(self.sample_rate, config, targets)
        self.tensorboard = media.TensorBoardLogger(self.folder.runs, config.tensorboard and self.context.is_main)
        self._ready = True

    def _make_loaders(self) -> None:
        config, context = self.config, self.context
        if config.batch_size % context.world_size:
            raise TrainingError(f"batch_size {config.batch_size} is not divisible by the {context.world_size} "
                                "processes; pick a multiple of the process count")
        per_rank = config.batch_size // context.world_size
        if context.distributed:
            self.sampler: Any = DistributedSampler(
                self.train_set, num_replicas=context.world_size, rank=context.rank, shuffle=True, seed=config.seed
            )
        else:
            self.generator = torch.Generator()
            self.sampler = RandomSampler(self.train_set, generator=self.generator)
        pin = self.context.device.type == "cuda"
        self.train_loader = DataLoader(self.train_set, batch_size=per_rank, sampler=self.sampler,
                                       num_workers=config.nb_workers, pin_memory=pin)
        indices = list(range(context.rank, len(self.valid_set), context.world_size))
        self.valid_loader = DataLoader(Subset(self.valid_set, indices), batch_size=1,
                                       num_workers=config.nb_workers, pin_memory=pin)

    # ------------------------------------------------------------------ epochs

    def start_epoch(self, epoch: int) -> None:
        """Select epoch ``epoch``'s excerpts, shuffling order and dropout seed."""
        self.train_set.set_epoch(epoch)
        if isinstance(self.sampler, DistributedSampler):
            self.sampler.set_epoch(epoch)
        else:
            self.generator.manual_seed(_seed(self.config.seed, epoch))
        torch.manual_seed(_seed(self.config.seed, epoch, self.context.rank))

    def train_epoch(self, epoch: int) -> tuple[list[float], int]:
        """One pass over the training data.

        Returns:
            ``(mean loss per target over all processes, number of items this process trained on)``.
        """
        from tqdm import tqdm

        self.start_epoch(epoch)
        self.train_module.train()
        device, config = self.context.device, self.config
        sums, count = None, 0
        show = not config.quiet and self.context.is_main
        bar = tqdm(self.train_loader, desc=f"epoch {epoch}/{config.epochs}", disable=not show, leave=False,
                   unit="batch")
        for x, y in bar:
            x, y = x.to(device, non_blocking=True), _as_targets(y).to(device, non_blocking=True)
            self.optimizer.zero_grad(set_to_none=True)
            losses = self.train_module(x, y)
            self.scaler.scale(losses.sum()).backward()
            if config.grad_clip > 0:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.separator.parameters(), config.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            batch = losses.detach().double() * x.shape[0]
            sums = batch if sums is None else sums + batch
            count += x.shape[0]
            if show:
                bar.set_postfix(loss=f"{float(sums.sum()) / count / len(losses):.4g}")
        if sums is None:
            raise TrainingError("the training dataset produced no batch; check the dataset and batch_size")
        totals = ddp.all_reduce_sum([*sums.tolist(), count], self.context)
        return [value / totals[-1] for value in totals[:-1]], count

    @torch.no_grad()
    def validate(self) -> tuple[list[float], list[float]]:
        """Validation loss and SDR (dB) per target, averaged over the validation items of all processes."""
        config, device = self.config, self.context.device
        self.separator.eval()
        nb_targets = len(self.models)
        sums = [0.0] * (2 * nb_targets)
        count = 0
        for x, y in self.valid_loader:
            x, y = x.to(device), _as_targets(y).to(device)
            estimates = None
            if config.end_to_end or config.valid_sdr:
                estimates = self.separator(x)[:, :nb_targets]
            if config.end_to_end:
                losses = waveform_loss(config.loss, estimates, y)
            else:
                losses = self.loss_module(x, y)
            scores = sdr(estimates, y)[0] if config.valid_sdr else torch.full((nb_targets,), math.nan)
            sums = [s + float(v) for s, v in zip(sums, [*losses.tolist(), *scores.tolist()])]
            count += 1
        totals = ddp.all_reduce_sum([*sums, count], self.context)
        if totals[-1] == 0:
            raise TrainingError("the validation dataset is empty; give validation tracks (--valid-tracks or valid/)")
        means = [value / totals[-1] for value in totals[:-1]]
        return means[:nb_targets], means[nb_targets:]

    def fit(self) -> TrainResult:
        """Train until ``config.epochs`` or early stopping; return the history (also in ``evaluation.csv``)."""
        if not self._ready:
            self.setup()
        config, state = self.config, self.state
        targets = list(self.models)
        try:
            if state.stopped or state.epoch >= config.epochs:
                logger.info("nothing to do: the run ended after epoch %d (epochs=%d, early stop=%s)",
                            state.epoch, config.epochs, state.stopped)
            for epoch in range(state.epoch + 1, config.epochs + 1):
                if state.stopped:
                    break
                start = time.perf_counter()
                train_losses, nb_items = self.train_epoch(epoch)
                train_time = time.perf_counter() - start
                valid_losses, valid_sdrs = self.validate()
                row = self._end_epoch(epoch, targets, train_losses, valid_losses, valid_sdrs, nb_items, train_time,
                                      time.perf_counter() - start)
                for callback in self.callbacks:
                    callback(self, epoch, row)
            ddp.check_in_sync(self.separator, self.context)
        finally:
            self.tensorboard.close()
            ddp.shutdown(self.context)
        return TrainResult(self.folder.root, list(state.history), state.best_epoch, self.early_stopping.best,
                           state.stopped)

    def _end_epoch(self, epoch: int, targets: list[str], train_losses: list[float], valid_losses: list[float],
                   valid_sdrs: list[float], nb_items: int, train_time: float, epoch_time: float) -> dict[str, Any]:
        config, state = self.config, self.state
        valid_loss = float(np.mean(valid_losses))
        lr = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step(valid_loss)
        stop = self.early_stopping.step(valid_loss)
        is_best = not math.isnan(valid_loss) and self.early_stopping.best == valid_loss
        row: dict[str, Any] = {
            "epoch": epoch, "train_loss": float(np.mean(train_losses)), "valid_loss": valid_loss,
            "valid_sdr": float(np.mean(valid_sdrs)), "lr": lr, "epoch_time": epoch_time, "best": is_best,
            "samples_per_s": nb_items * self.context.world_size / max(train_time, 1e-9),
        }
        if len(targets) > 1:
            for name, values in (("train_loss", train_losses), ("valid_loss", valid_losses),
                                 ("valid_sdr", valid_sdrs)):
                row.update({f"{name}_{t}": float(v) for t, v in zip(targets, values)})
        state.epoch = epoch
        state.history.append(row)
        state.stopped = stop
        if is_best:
            state.best_epoch = epoch
        logger.info("epoch %d: train %.5g, valid %.5g, SDR %.2f dB, %.1f items/s%s", epoch, row["train_loss"],
                    valid_loss, row["valid_sdr"], row["samples_per_s"], " (best)" if is_best else "")
        if self.context.is_main:
            self._write(epoch, is_best)
            self.tensorboard.log(epoch, row)
            if config.media_every and (epoch == 1 or epoch % config.media_every == 0):
                self.write_media(epoch)
        ddp.barrier(self.context)
        if stop:
            logger.info("early stopping after epoch %d (no improvement for %d epochs)", epoch, config.patience)
        return row

    def _write(self, epoch: int, is_best: bool) -> None:
        """Checkpoints, model files and ``evaluation.csv`` of the epoch just finished."""
        states = {t: {k: v.detach().cpu() for k, v in m.state_dict().items()} for t, m in self.models.items()}
        checkpoint = {
            "models": states, "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(), "early_stopping": self.early_stopping.state_dict(),
            "state": self.state.state_dict(), "rng": capture_rng_state(), "config": self.config.to_dict(),
        }
        save_checkpoint(self.folder.latest, **checkpoint)
        if is_best:
            save_checkpoint(self.folder.best, **checkpoint)
        args = {**self.config.to_dict(), "sample_rate": self.sample_rate,
                "max_bin": builders.max_bin(self.config, self.sample_rate)}
        descriptions = {t: builders.model_description(m) for t, m in self.models.items()}
        if is_best or not all((self.folder.root / f"{t}.pth").is_file() for t in self.models):
            weights = states
        else:
            weights = {}
        self.folder.write_target_files(weights, descriptions, args, self.state.history, self.state.best_epoch,
                                       self.early_stopping.best, self.early_stopping.num_bad_epochs,
                                       targets=list(self.models))
        self.folder.write_evaluation(self.state.history)

    @torch.no_grad()
    def write_media(self, epoch: int) -> None:
        """Spectrogram/mask images and audio snippets of the first validation item's first seconds."""
        config, device = self.config, self.context.device
        x, y = self.valid_set[0]
        x = media.excerpt(x, self.sample_rate, config.media_seconds).to(device)
        y = _as_targets(media.excerpt(y, self.sample_rate, config.media_seconds)[None])[0].to(device)
        self.separator.eval()
        waveforms = self.separator(x[None])[0]
        mix_stft = self.separator.stft(x[None])
        spectrograms = self.separator.estimate_spectrograms(mix_stft)[0]
        targets = list(self.models)
        stft = self.separator.stft
        references = {t: stft(y[j]).abs() for j, t in enumerate(targets)}
        estimates = {t: spectrograms[j] for j, t in enumerate(targets)}
        media.save_spectrogram_images(self.folder.images, epoch, mix_stft[0].abs(), references, estimates,
                                      self.sample_rate, stft.n_hop)
        media.save_audio_snippets(self.folder.audio, epoch, x, {t: y[j] for j, t in enumerate(targets)},
                                  {t: waveforms[j] for j, t in enumerate(targets)}, self.sample_rate)


def train(
    config: TrainConfig,
    folder: str | os.PathLike[str],
    callbacks: Sequence[Callback] = (),
    resume: bool = True,
) -> TrainResult:
    """Train ``config`` into ``folder`` (see :class:`Trainer`); resumes an interrupted run by default."""
    return Trainer(config, folder, callbacks=callbacks, resume=resume).fit()


__all__ = ["Callback", "LossModule", "TrainResult", "Trainer", "train"]

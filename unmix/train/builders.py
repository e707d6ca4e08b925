"""From a :class:`~unmix.train.config.TrainConfig` to datasets, target models and the Separator that trains them."""

from __future__ import annotations

import inspect
import logging
from typing import Any

import numpy as np
import torch
from torch import nn

from unmix.data import DATASET_BUILDERS, BaseDataset, compute_input_statistics
from unmix.dsp.stft import TorchSTFT, bandwidth_to_max_bin
from unmix.models.openunmix import OpenUnmix
from unmix.separator import Separator
from unmix.train.config import TrainConfig, TrainingError

logger = logging.getLogger(__name__)


def dataset_kwargs(config: TrainConfig) -> dict[str, Any]:
    """Keyword arguments of ``unmix.data.load_datasets(config.dataset, ...)`` from the config.

    Generic settings are mapped to each builder's own names (``targets`` -> ``output_file="<target>.wav"`` for
    ``aligned``, ``target_dir`` for ``sourcefolder``, ``target_file`` for the track folders, ``instruments`` for
    ``csv``) and kept only where the builder accepts them; ``config.dataset_args`` overrides everything.
    """
    if config.dataset not in DATASET_BUILDERS:
        raise TrainingError(f"unknown dataset {config.dataset!r}; choose from {sorted(DATASET_BUILDERS)}")
    single = config.targets[0]
    ext = str(config.dataset_args.get("ext", ".wav"))
    generic: dict[str, Any] = {
        "root": config.root,
        "targets": list(config.targets),
        "instruments": list(config.targets),
        "is_wav": config.is_wav,
        "seq_duration": config.seq_dur,
        "samples_per_track": config.samples_per_track,
        "source_augmentations": list(config.source_augmentations),
        "random_track_mix": config.random_track_mix,
        "valid_tracks": config.valid_tracks,
        "sample_rate": config.sample_rate,
        "nb_channels": config.nb_channels,
        "seed": config.seed,
        "output_file": f"{single}{ext}",
        "target_dir": single,
        "target_file": f"{single}{ext}",
    }
    builder = DATASET_BUILDERS[config.dataset]
    accepted = inspect.signature(builder).parameters
    kwargs = {key: value for key, value in generic.items() if key in accepted}
    if config.dataset == "trackfolder_fix":
        kwargs["random_track_mix"] = bool(config.dataset_args.get("random_track_mix", False))
    if "seq_duration" in accepted and config.seq_dur is None and config.dataset == "sourcefolder":
        raise TrainingError("the sourcefolder dataset needs a seq_dur > 0 (it mixes excerpts of unrelated files)")
    kwargs.update(config.dataset_args)
    if "root" in accepted and not kwargs.get("root"):
        raise TrainingError(f"dataset {config.dataset!r} needs a root folder: pass --root DIR (or set 'root')")
    unknown = sorted(set(config.dataset_args) - set(accepted))
    if unknown:
        raise TrainingError(
            f"dataset_args {unknown} are not accepted by the {config.dataset!r} dataset; accepted: {list(accepted)}"
        )
    return kwargs


def build_datasets(config: TrainConfig) -> tuple[BaseDataset, BaseDataset]:
    """The ``(train, valid)`` datasets of the run (``unmix.data.load_datasets``)."""
    from unmix.data import load_datasets

    return load_datasets(config.dataset, **dataset_kwargs(config))


def dataset_targets(dataset: BaseDataset) -> list[str]:
    """Target names of the dataset's ``y`` (its ``targets`` attribute)."""
    return [str(t) for t in getattr(dataset, "targets", ())]


def max_bin(config: TrainConfig, sample_rate: float) -> int:
    """Open-Unmix's ``max_bin`` for the configured bandwidth."""
    return bandwidth_to_max_bin(sample_rate, config.nfft, config.bandwidth)


def input_statistics(config: TrainConfig, train: BaseDataset) -> tuple[np.ndarray, np.ndarray]:
    """Mean and scale per bin of the training mixtures (Open-Unmix's ``get_statistics``, ``center=False``)."""
    return compute_input_statistics(
        train, n_fft=config.nfft, n_hop=config.nhop, center=False, nb_channels=config.nb_channels,
        max_items=config.statistics_max_items,
    )


def unet_args(config: TrainConfig) -> dict[str, Any]:
    """Constructor arguments of a U-Net target model (``model_args`` plus the channel count)."""
    args = {"nb_channels": config.nb_channels, **config.model_args}
    nb_bins = config.nfft // 2 + 1
    if int(args.get("nb_bins", 1024)) > nb_bins:
        raise TrainingError(f"U-Net nb_bins={args.get('nb_bins', 1024)} exceeds the {nb_bins} STFT bins; "
                            "lower model_args.nb_bins or raise nfft")
    return args


def build_models(
    config: TrainConfig,
    targets: list[str],
    sample_rate: float,
    statistics: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, nn.Module]:
    """Fresh target models (seeded by ``config.seed``), or the models of ``config.model`` to fine-tune."""
    if config.model:
        from unmix.pretrained import load_target_models

        logger.info("fine-tuning %s", config.model)
        models = load_target_models(config.model, targets=targets, device="cpu", pretrained=True)
        for target, model in models.items():
            bins, channels = getattr(model, "nb_output_bins", None), getattr(model, "nb_channels", None)
            nb_bins = config.nfft // 2 + 1
            wrong_bins = bins != nb_bins if isinstance(model, OpenUnmix) else bins is not None and bins > nb_bins
            if wrong_bins or channels != config.nb_channels:
                raise TrainingError(
                    f"the {target} model of {config.model} takes {channels} channels and {bins} bins, but the "
                    f"run is set to nb_channels={config.nb_channels}, nfft={config.nfft}; set --nb-channels and "
                    f"--nfft (and --nhop) to the model's values"
                )
        return {target: model.train() for target, model in models.items()}
    torch.manual_seed(config.seed)
    mean, scale = statistics if statistics is not None else (None, None)
    models: dict[str, nn.Module] = {}
    for target in targets:
        if config.architecture == "unet":
            from unmix.models.unet import UNet

            models[target] = UNet(**unet_args(config))
        else:
            models[target] = OpenUnmix(
                nb_bins=config.nfft // 2 + 1, nb_channels=config.nb_channels, hidden_size=config.hidden_size,
                nb_layers=config.nb_layers, unidirectional=config.unidirectional, input_mean=mean,
                input_scale=scale, max_bin=max_bin(config, sample_rate), **config.model_args,
            )
    return models


def architecture_of(model: nn.Module) -> str:
    """``"unet"`` or ``"openunmix"`` for a target model."""
    from unmix.models.unet import UNet

    return "unet" if isinstance(model, UNet) else "openunmix"


def model_description(model: nn.Module) -> dict[str, Any]:
    """The model's entries of ``<target>.json``: ``architecture`` and (U-Net) ``model_args``."""
    if architecture_of(model) == "unet":
        return {
            "architecture": "unet",
            "model_args": {
                "nb_channels": model.nb_channels, "nb_bins": model.nb_bins, "segment_frames": model.segment_frames,
                "conv_activation": model.conv_activation, "deconv_activation": model.deconv_activation,
                "output_logits": model.output_logits, "conv_n_filters": list(model.conv_n_filters),
            },
        }
    return {"architecture": "openunmix", "model_args": {
        "nb_bins": model.nb_output_bins, "nb_channels": model.nb_channels, "hidden_size": model.hidden_size,
        "nb_layers": model.nb_layers, "unidirectional": model.unidirectional, "max_bin": model.nb_bins,
    }}


def build_separator(config: TrainConfig, models: dict[str, nn.Module], sample_rate: float) -> Separator:
    """The Separator around the target models: centred STFT, ``niter`` EM iterations.

    With one target and ``niter > 0`` a residual source is added (the EM needs two sources).
    """
    residual = config.niter > 0 and len(models) == 1
    return Separator(
        models, niter=config.niter, residual=residual, sample_rate=sample_rate, n_fft=config.nfft,
        n_hop=config.nhop, nb_channels=config.nb_channels, wiener_win_len=config.wiener_win_len,
    )


def training_stft(config: TrainConfig) -> TorchSTFT:
    """Open-Unmix's training encoder STFT (``center=False``), used by the spectrogram losses."""
    return TorchSTFT(config.nfft, config.nhop, center=False)


__all__ = ["build_datasets", "build_models", "build_separator", "dataset_kwargs", "input_statistics", "max_bin",
           "model_description", "training_stft"]

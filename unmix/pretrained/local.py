"""Model folders in Open-Unmix's layout: ``<target>.pth`` + ``<target>.json`` per target and ``separator.json``.

This is the layout upstream's ``scripts/train.py`` writes and unmix's training writes, so a trained folder separates
directly. ``<target>.json`` holds ``{"args": {"nfft", "nhop", "nb_channels", "hidden_size", ...}}`` and optionally
``"architecture"`` (``"openunmix"``, the default, or ``"unet"``); ``separator.json`` holds ``sample_rate``,
``nfft``, ``nhop``, ``nb_channels`` and optionally ``targets`` (their order).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unmix.errors import ModelLoadingError, TargetNotFoundError
from unmix.models.openunmix import OpenUnmix, infer_config, load_weights

logger = logging.getLogger(__name__)

#: Conventional output order of the MUSDB targets when a folder does not state one.
MUSDB_ORDER = ("vocals", "drums", "bass", "other")


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON object, raising :class:`ModelLoadingError` with the path on any problem."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError as err:
        raise ModelLoadingError(f"missing file {path}: a model folder needs <target>.json and separator.json") from err
    except (OSError, json.JSONDecodeError) as err:
        raise ModelLoadingError(f"cannot read JSON file {path}: {err}") from err
    if not isinstance(data, dict):
        raise ModelLoadingError(f"{path} must hold a JSON object, found {type(data).__name__}")
    return data


def find_weights(folder: Path, target: str) -> Path:
    """The weight file of ``target``: ``<target>.pth``, else a single ``<target>-<hash>.pth`` / ``<target>_<hash>.pth``."""
    exact = folder / f"{target}.pth"
    if exact.is_file():
        return exact
    candidates = sorted(p for p in folder.glob(f"{target}[-_]*.pth") if p.is_file())
    if len(candidates) != 1:
        found = [p.name for p in folder.glob("*.pth")]
        raise ModelLoadingError(
            f"expected one weight file {target}.pth (or {target}-<hash>.pth) in {folder}, found {found or 'none'}"
        )
    return candidates[0]


def folder_targets(folder: Path) -> list[str]:
    """Targets available in a model folder, in the folder's stated order (``separator.json`` ``targets``)."""
    sep = folder / "separator.json"
    if sep.is_file():
        stated = read_json(sep).get("targets")
        if stated:
            return [str(t) for t in stated]
    names = sorted(p.stem for p in folder.glob("*.json") if p.stem != "separator" and any(folder.glob(f"{p.stem}*.pth")))
    return sorted(names, key=lambda n: (MUSDB_ORDER.index(n) if n in MUSDB_ORDER else len(MUSDB_ORDER), n))


def load_state(path: Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Load a plain state dict with ``weights_only=True``."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # torch raises many types for corrupt files
        raise ModelLoadingError(f"cannot load weights from {path}: {err}; the file may be corrupted") from err
    if not isinstance(state, dict):
        raise ModelLoadingError(f"{path} does not hold a state dict (found {type(state).__name__})")
    return state


def build_target_model(config: dict[str, Any], state: dict[str, torch.Tensor] | None, source: Path) -> nn.Module:
    """Build one target model from its ``<target>.json`` content and (optionally) its weights."""
    architecture = str(config.get("architecture", "openunmix")).lower()
    args = config.get("args", config)
    if architecture == "unet":
        from unmix.models.unet import UNet

        model: nn.Module = UNet(**dict(config.get("model_args", {})))
    elif architecture == "openunmix":
        if state is not None:
            kwargs = infer_config(state)
        else:
            try:
                nb_bins = int(args["nfft"]) // 2 + 1
                kwargs = {
                    "nb_bins": nb_bins,
                    "nb_channels": int(args["nb_channels"]),
                    "hidden_size": int(args["hidden_size"]),
                    "max_bin": int(args.get("max_bin") or nb_bins),
                }
            except KeyError as err:
                raise ModelLoadingError(f"{source} lacks args.{err.args[0]} needed to build the model") from err
            kwargs["nb_layers"] = int(args.get("nb_layers", 3))
            kwargs["unidirectional"] = bool(args.get("unidirectional", False))
        if "nfft" in args and int(args["nfft"]) // 2 + 1 != kwargs["nb_bins"]:
            raise ModelLoadingError(
                f"{source} says nfft={args['nfft']} but the weights have {kwargs['nb_bins']} bins"
            )
        model = OpenUnmix(**kwargs)
    else:
        raise ModelLoadingError(f"{source}: unknown architecture {architecture!r}; expected 'openunmix' or 'unet'")
    if state is not None:
        if architecture == "openunmix":
            load_weights(model, state)
        else:
            model.load_state_dict(state, strict=True)
    return model


def load_target_models(
    folder: str | Path,
    targets: str | Sequence[str] | None = None,
    device: str | torch.device = "cpu",
    pretrained: bool = True,
) -> dict[str, nn.Module]:
    """Load the target models of a model folder.

    Args:
        folder: the model folder.
        targets: one or several target names; None loads every target of the folder.
        device: where to put the models.
        pretrained: load the weights; False builds the same architecture with random weights.

    Returns:
        ``{target: model}`` in the requested (or the folder's) order, in eval mode.
    """
    folder = Path(folder).expanduser()
    available = folder_targets(folder)
    if targets is None:
        targets = available
    elif isinstance(targets, str):
        targets = [targets]
    if not targets:
        raise ModelLoadingError(f"no targets found in {folder}: expected <target>.json and <target>.pth files")
    unknown = [t for t in targets if t not in available]
    if unknown:
        raise TargetNotFoundError(f"model folder {folder} has no target(s) {unknown}; available: {available}")
    models = {}
    for target in targets:
        config = read_json(folder / f"{target}.json")
        state = load_state(find_weights(folder, target), device) if pretrained else None
        models[target] = build_target_model(config, state, folder / f"{target}.json").to(device).eval()
    return models


def load_folder_separator(
    folder: str | Path,
    targets: str | Sequence[str] | None = None,
    device: str | torch.device = "cpu",
    pretrained: bool = True,
    **separator_kwargs: Any,
) -> nn.Module:
    """Build a :class:`~unmix.separator.Separator` from a model folder (see module docstring)."""
    from unmix.separator import Separator

    folder = Path(folder).expanduser()
    settings = read_json(folder / "separator.json")
    try:
        stft = {
            "sample_rate": float(settings["sample_rate"]),
            "n_fft": int(settings["nfft"]),
            "n_hop": int(settings["nhop"]),
            "nb_channels": int(settings["nb_channels"]),
        }
    except KeyError as err:
        raise ModelLoadingError(f"{folder / 'separator.json'} lacks the key {err}") from err
    models = load_target_models(folder, targets, device, pretrained)
    return Separator(models, **stft, **separator_kwargs).to(device)

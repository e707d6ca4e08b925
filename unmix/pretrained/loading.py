"""``load_separator``: one entry point for model folders, Spleeter configurations and registry names."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unmix.pretrained import local


def load_separator(
    model_str_or_path: str | Path = "umxl",
    targets: str | Sequence[str] | None = None,
    niter: int = 1,
    residual: bool | str = False,
    softmask: bool = False,
    alpha: float = 1.0,
    wiener_win_len: int | None = 300,
    device: str | torch.device = "cpu",
    pretrained: bool = True,
    MWF: bool | None = None,  # noqa: N803 (Spleeter's spelling)
    precision: str = "float32",
) -> nn.Module:
    """Load a :class:`~unmix.separator.Separator`.

    Args:
        model_str_or_path: a model folder (Open-Unmix layout), a Spleeter configuration ``.json`` file, or a
            registered name (``unmix.list_models()``: ``umxl``, ``umxhq``, ``spleeter:4stems``, ``demo`` ...).
        targets: targets to load (default: all of the model's).
        niter: Wiener EM iterations.
        residual: add a residual target (a string names it).
        softmask: start the EM from ratio masks.
        alpha: ratio-mask exponent.
        wiener_win_len: frames per Wiener block (None: whole signal).
        device: device of the returned separator.
        pretrained: load the weights (False: random weights, same architecture).
        MWF: Spleeter models only: use the multichannel Wiener filter instead of ratio masks.
        precision: precision of the target models (``"float32"``, ``"bfloat16"``, ``"float16"``; see
            :class:`~unmix.separator.Separator`).

    Returns:
        The separator, in eval mode, on ``device``.

    Raises:
        ModelNotFoundError: the name is unknown; the message lists the registered names.
        TargetNotFoundError: a requested target does not exist; the message lists the model's targets.
        ModelLoadingError: files are missing, malformed or do not match the architecture.
    """
    from unmix.separator import PRECISIONS

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    path = Path(str(model_str_or_path)).expanduser()
    options: dict[str, Any] = {
        "niter": niter,
        "residual": residual,
        "softmask": softmask,
        "alpha": alpha,
        "wiener_win_len": wiener_win_len,
    }
    if path.suffix.lower() == ".json" and path.is_file():
        from unmix.pretrained.spleeter import load_spleeter_separator

        separator = load_spleeter_separator(path, MWF=bool(MWF), targets=targets, device=device, residual=residual)
    elif path.is_dir():
        separator = local.load_folder_separator(path, targets, device, pretrained, **options)
    else:
        from unmix.pretrained.registry import load_pretrained_separator

        extra = {} if MWF is None else {"MWF": MWF}
        separator = load_pretrained_separator(
            str(model_str_or_path), targets=targets, device=device, pretrained=pretrained, **options, **extra
        )
    separator.precision = precision
    return separator.eval()


def load_target_models(
    model_str_or_path: str | Path = "umxl",
    targets: str | Sequence[str] | None = None,
    device: str | torch.device = "cpu",
    pretrained: bool = True,
) -> dict[str, nn.Module]:
    """Load the per-target spectrogram models of a folder or registered model (no Separator around them)."""
    path = Path(str(model_str_or_path)).expanduser()
    if path.is_dir():
        return local.load_target_models(path, targets, device, pretrained)
    from unmix.pretrained.registry import load_pretrained_target_models

    return load_pretrained_target_models(str(model_str_or_path), targets=targets, device=device, pretrained=pretrained)

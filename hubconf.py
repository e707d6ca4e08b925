"""torch.hub entry points: Open-Unmix (``umx``, ``umxhq``, ``umxl``, ``umxse`` and their ``*_spec`` variants, with
upstream ``openunmix``'s signatures) and Spleeter (``spleeter_2stems`` ... ``spleeter_5stems_16kHz``).

Every entry is a thin wrapper over the registry in :mod:`unmix.pretrained.registry`, which holds the URLs, hashes,
STFT settings and licences (``umxl`` weights: CC BY-NC-SA 4.0, non-commercial). Examples::

    separator = torch.hub.load("<path or owner/repo of unmix>", "umxl", device="cpu")
    models = torch.hub.load("/path/to/unmix", "umxse_spec", source="local", pretrained=False)

Downloads are cached in ``$UNMIX_CACHE`` (default: torch.hub's ``checkpoints`` folder, shared with upstream) and
verified against their SHA-256; ``$UNMIX_MIRROR`` redirects them to a mirror base URL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: importing unmix here would run before torch.hub checks `dependencies`
    import torch
    from torch import nn

#: A target name, a list of target names, or None for all of the model's targets.
Targets = str | Sequence[str] | None

#: The runtime dependencies of unmix (pyproject's ``[project] dependencies``), as module names; they cover every
#: third-party module ``import unmix`` loads (both checked by tests/pretrained/test_hub.py).
dependencies = ["torch", "numpy", "soundfile", "soxr", "tqdm"]


def _check_filterbank(filterbank: str) -> None:
    if filterbank != "torch":
        from unmix.errors import ModelLoadingError

        raise ModelLoadingError(
            f"filterbank={filterbank!r} is not supported: unmix has one STFT front end, equal to upstream's "
            "'torch' filterbank. Use filterbank='torch'."
        )


def _separator(name: str, filterbank: str = "torch", **kwargs: Any) -> Any:
    from unmix.pretrained.registry import load_pretrained_separator

    _check_filterbank(filterbank)
    return load_pretrained_separator(name, **kwargs)


def _spec(name: str, **kwargs: Any) -> Any:
    from unmix.pretrained.registry import load_pretrained_target_models

    return load_pretrained_target_models(name, **kwargs)


def umx_spec(
    targets: Targets = None,
    device: str | torch.device = "cpu",
    pretrained: bool = True,
) -> dict[str, nn.Module]:
    """Open-Unmix spectrogram models trained on MUSDB18: ``{target: OpenUnmix}`` (vocals, drums, bass, other)."""
    return _spec("umx", targets=targets, device=device, pretrained=pretrained)


def umx(
    targets: Targets = None,
    residual: bool | str = False,
    niter: int = 1,
    device: str | torch.device = "cpu",
    pretrained: bool = True,
    wiener_win_len: int | None = 300,
    filterbank: str = "torch",
) -> nn.Module:
    """Open-Unmix Separator trained on MUSDB18 (44.1 kHz stereo; vocals, drums, bass, other; MIT)."""
    return _separator("umx", filterbank, targets=targets, residual=residual, niter=niter, device=device,
                      pretrained=pretrained, wiener_win_len=wiener_win_len)


def umxhq_spec(
    targets: Targets = None,
    device: str | torch.device = "cpu",
    pretrained: bool = True,
) -> dict[str, nn.Module]:
    """Open-Unmix spectrogram models trained on MUSDB18-HQ: ``{target: OpenUnmix}``."""
    return _spec("umxhq", targets=targets, device=device, pretrained=pretrained)


def umxhq(
    targets: Targets = None,
    residual: bool | str = False,
    niter: int = 1,
    device: str | torch.device = "cpu",
    pretrained: bool = True,
    wiener_win_len: int | None = 300,
    filterbank: str = "torch",
) -> nn.Module:
    """Open-Unmix Separator trained on MUSDB18-HQ (44.1 kHz stereo; vocals, drums, bass, other; MIT)."""
    return _separator("umxhq", filterbank, targets=targets, residual=residual, niter=niter, device=device,
                      pretrained=pretrained, wiener_win_len=wiener_win_len)


def umxl_spec(
    targets: Targets = None,
    device: str | torch.device = "cpu",
    pretrained: bool = True,
) -> dict[str, nn.Module]:
    """Open-Unmix large spectrogram models (weights CC BY-NC-SA 4.0, non-commercial): ``{target: OpenUnmix}``."""
    return _spec("umxl", targets=targets, device=device, pretrained=pretrained)


def umxl(
    targets: Targets = None,
    residual: bool | str = False,
    niter: int = 1,
    device: str | torch.device = "cpu",
    pretrained: bool = True,
    wiener_win_len: int | None = 300,
    filterbank: str = "torch",
) -> nn.Module:
    """Open-Unmix large Separator, upstream's default (44.1 kHz stereo; weights CC BY-NC-SA 4.0, non-commercial)."""
    return _separator("umxl", filterbank, targets=targets, residual=residual, niter=niter, device=device,
                      pretrained=pretrained, wiener_win_len=wiener_win_len)


def demo(
    targets: Targets = None,
    residual: bool | str = False,
    niter: int = 1,
    device: str | torch.device = "cpu",
    pretrained: bool = True,
    wiener_win_len: int | None = 300,
    filterbank: str = "torch",
) -> nn.Module:
    """Tiny offline demo Open-Unmix shipped inside unmix (44.1 kHz; vocals, drums, bass, other; MIT; synthetic data)."""
    return _separator("demo", filterbank, targets=targets, residual=residual, niter=niter, device=device,
                      pretrained=pretrained, wiener_win_len=wiener_win_len)


def umxse_spec(
    targets: Targets = None,
    device: str | torch.device = "cpu",
    pretrained: bool = True,
) -> dict[str, nn.Module]:
    """Open-Unmix speech enhancement spectrogram models (16 kHz mono): ``{"speech": ..., "noise": ...}``."""
    return _spec("umxse", targets=targets, device=device, pretrained=pretrained)


def umxse(
    targets: Targets = None,
    residual: bool | str = False,
    niter: int = 1,
    device: str | torch.device = "cpu",
    pretrained: bool = True,
    filterbank: str = "torch",
    wiener_win_len: int | None = 300,
) -> nn.Module:
    """Open-Unmix speech enhancement Separator (16 kHz mono, n_fft 1024, hop 512; speech, noise)."""
    return _separator("umxse", filterbank, targets=targets, residual=residual, niter=niter, device=device,
                      pretrained=pretrained, wiener_win_len=wiener_win_len)


def _spleeter(
    name: str, targets: Targets, MWF: bool, residual: bool | str, device: Any, pretrained: bool  # noqa: N803
) -> Any:
    return _separator(name, targets=targets, MWF=MWF, residual=residual, device=device, pretrained=pretrained)


def spleeter_2stems(
    targets: Targets = None,
    MWF: bool = False,  # noqa: N803 (Spleeter's spelling)
    residual: bool | str = False,
    device: str | torch.device = "cpu",
    pretrained: bool = True,
) -> nn.Module:
    """Spleeter 2 stems (vocals, accompaniment), 44.1 kHz stereo, converted from the TF release (MIT)."""
    return _spleeter("spleeter:2stems", targets, MWF, residual, device, pretrained)


def spleeter_2stems_16kHz(  # noqa: N802 (the registry name's spelling)
    targets: Targets = None,
    MWF: bool = False,  # noqa: N803 (Spleeter's spelling)
    residual: bool | str = False,
    device: str | torch.device = "cpu",
    pretrained: bool = True,
) -> nn.Module:
    """Spleeter 2 stems run on 1536 bins (up to 16.5 kHz), same checkpoint as ``spleeter_2stems``."""
    return _spleeter("spleeter:2stems-16kHz", targets, MWF, residual, device, pretrained)


def spleeter_4stems(
    targets: Targets = None,
    MWF: bool = False,  # noqa: N803 (Spleeter's spelling)
    residual: bool | str = False,
    device: str | torch.device = "cpu",
    pretrained: bool = True,
) -> nn.Module:
    """Spleeter 4 stems (vocals, drums, bass, other), 44.1 kHz stereo, converted from the TF release (MIT)."""
    return _spleeter("spleeter:4stems", targets, MWF, residual, device, pretrained)


def spleeter_4stems_16kHz(  # noqa: N802 (the registry name's spelling)
    targets: Targets = None,
    MWF: bool = False,  # noqa: N803 (Spleeter's spelling)
    residual: bool | str = False,
    device: str | torch.device = "cpu",
    pretrained: bool = True,
) -> nn.Module:
    """Spleeter 4 stems run on 1536 bins (up to 16.5 kHz), same checkpoint as ``spleeter_4stems``."""
    return _spleeter("spleeter:4stems-16kHz", targets, MWF, residual, device, pretrained)


def spleeter_5stems(
    targets: Targets = None,
    MWF: bool = False,  # noqa: N803 (Spleeter's spelling)
    residual: bool | str = False,
    device: str | torch.device = "cpu",
    pretrained: bool = True,
) -> nn.Module:
    """Spleeter 5 stems (vocals, piano, drums, bass, other), 44.1 kHz stereo, converted from the TF release (MIT)."""
    return _spleeter("spleeter:5stems", targets, MWF, residual, device, pretrained)


def spleeter_5stems_16kHz(  # noqa: N802 (the registry name's spelling)
    targets: Targets = None,
    MWF: bool = False,  # noqa: N803 (Spleeter's spelling)
    residual: bool | str = False,
    device: str | torch.device = "cpu",
    pretrained: bool = True,
) -> nn.Module:
    """Spleeter 5 stems run on 1536 bins (up to 16.5 kHz), same checkpoint as ``spleeter_5stems``."""
    return _spleeter("spleeter:5stems-16kHz", targets, MWF, residual, device, pretrained)

"""Shared pieces of the separator benchmark: the torchaudio stub, the workload and the two separators.

* ``install_torchaudio_stub()`` puts a fake, empty ``torchaudio`` module into ``sys.modules`` so that upstream
  ``openunmix`` 1.3.0 can be imported without torchaudio (upstream imports it at module level in ``transforms.py`` and
  ``utils.py`` but only *uses* it for file I/O and resampling, never in ``openunmix.model``).
* ``make_workload()`` writes the identical inputs both implementations read: the audio and one random umxhq-size
  state dict per target, BatchNorm running statistics and input/output scalers randomised too.
* ``build_separator()`` builds ``openunmix.model.Separator`` or ``unmix.Separator`` from those files.

Only numpy and torch are needed here; unmix and openunmix are imported lazily by ``build_separator``.
"""

from __future__ import annotations

import inspect
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

TARGETS = ("vocals", "drums", "bass", "other")
SAMPLE_RATE = 44100
N_FFT = 4096
N_HOP = 1024
#: umxhq size: 2049 bins, stereo, hidden 512, 3 BiLSTM layers, bandwidth limit at bin 1487 (16 kHz).
MODEL_KWARGS: dict[str, Any] = {"nb_bins": N_FFT // 2 + 1, "nb_channels": 2, "hidden_size": 512, "max_bin": 1487}
SEPARATOR_KWARGS: dict[str, Any] = {
    "niter": 1,
    "wiener_win_len": 300,
    "sample_rate": float(SAMPLE_RATE),
    "n_fft": N_FFT,
    "n_hop": N_HOP,
    "nb_channels": 2,
}


# ----------------------------------------------------------------------------------------------------------------------
# STUB: a fake `torchaudio`. It is NOT torchaudio. It only satisfies `import torchaudio` at the top of upstream's
# openunmix/transforms.py and openunmix/utils.py. Any attribute access (torchaudio.load, torchaudio.transforms, ...)
# raises, so a benchmark that accidentally reaches upstream's file I/O fails loudly instead of measuring a fake.
# ----------------------------------------------------------------------------------------------------------------------
class _TorchaudioStub(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        raise AttributeError(
            f"torchaudio.{name} was used, but this process runs with the benchmark's torchaudio STUB "
            "(benchmarks/_upstream.py): only openunmix.model is supported without a real torchaudio"
        )


def install_torchaudio_stub() -> bool:
    """Insert the stub as ``sys.modules['torchaudio']`` unless a real torchaudio is importable.

    Returns:
        True when the stub was installed, False when a real torchaudio is used.
    """
    if "torchaudio" in sys.modules:
        return isinstance(sys.modules["torchaudio"], _TorchaudioStub)
    try:
        import torchaudio  # noqa: F401  (a real one: use it)

        return False
    except ImportError:
        stub = _TorchaudioStub("torchaudio", "STUB torchaudio inserted by benchmarks/_upstream.py (no functionality)")
        stub.__version__ = "0.0.0+benchmark-stub"  # type: ignore[attr-defined]
        sys.modules["torchaudio"] = stub
        return True


def upstream_version() -> str:
    """Import upstream openunmix (with the stub if needed) and return its version; raises ImportError if absent."""
    install_torchaudio_stub()
    import openunmix.model  # noqa: F401

    try:
        from importlib.metadata import version

        return version("openunmix")
    except Exception:  # noqa: BLE001  (no metadata: a source checkout on sys.path)
        return "unknown"


# ----------------------------------------------------------------------------------------------------------------------
# workload
# ----------------------------------------------------------------------------------------------------------------------
def _layout() -> dict[str, tuple[tuple[int, ...], Any]]:
    """``{key: (shape, dtype)}`` of one umxhq-size OpenUnmix state dict (upstream's layout, same in unmix)."""
    try:
        from unmix.models.openunmix import OpenUnmix
    except ImportError:
        install_torchaudio_stub()
        from openunmix.model import OpenUnmix  # type: ignore[no-redef]
    return {k: (tuple(v.shape), v.dtype) for k, v in OpenUnmix(**MODEL_KWARGS).state_dict().items()}


def _random_state_dict(gen: Any, layout: dict, bin_mean: Any, bin_std: Any) -> dict:
    """One random state dict: uniform fan-in init for weights, random BatchNorm statistics, scalers from the audio.

    ``bin_mean``/``bin_std``: per-bin mean and std of the mixture magnitude (like upstream's training statistics),
    jittered per target, so the normalised network input is roughly standard and the masks are not degenerate.
    """
    import torch

    def uniform(shape: tuple[int, ...], low: float, high: float) -> torch.Tensor:
        return torch.rand(shape, generator=gen) * (high - low) + low

    def normal(shape: tuple[int, ...], std: float) -> torch.Tensor:
        return torch.randn(shape, generator=gen) * std

    state = {}
    for key, (shape, dtype) in layout.items():
        leaf = key.rsplit(".", 1)[-1]
        if key == "input_mean":
            value = -bin_mean[: shape[0]] * (1 + normal(shape, 0.1))
        elif key == "input_scale":
            value = (1 + normal(shape, 0.1)) / bin_std[: shape[0]]
        elif key == "output_scale":
            value = uniform(shape, 0.5, 1.5)
        elif key == "output_mean":
            value = uniform(shape, 0.0, 1.0)
        elif leaf == "num_batches_tracked":
            value = torch.randint(1, 10**6, shape, generator=gen)
        elif leaf == "running_mean":
            value = normal(shape, 0.1)
        elif leaf == "running_var":
            value = uniform(shape, 0.1, 0.5)
        elif key.startswith("bn") and leaf == "weight":
            value = uniform(shape, 0.5, 1.5)
        elif key.startswith("bn") and leaf == "bias":
            value = normal(shape, 0.1)
        elif key.startswith("lstm"):  # torch's own LSTM init range: 1/sqrt(hidden per direction)
            bound = 1.0 / (MODEL_KWARGS["hidden_size"] // 2) ** 0.5
            value = uniform(shape, -bound, bound)
        elif leaf == "weight":  # Linear, fan-in = shape[1]
            bound = 1.0 / shape[1] ** 0.5
            value = uniform(shape, -bound, bound)
        else:
            raise KeyError(f"no randomisation rule for state-dict key {key!r} {shape}")
        state[key] = value.to(dtype).reshape(shape).contiguous()
    return state


def make_workload(directory: Path, duration: float, seed: int) -> dict[str, str]:
    """Write ``audio.npy`` (1, 2, duration*44100) float32 in [-1, 1) and ``weights.pt`` {target: state dict}.

    Returns:
        ``{"audio": path, "weights": path}``.
    """
    import numpy as np
    import torch

    gen = torch.Generator().manual_seed(seed)
    nb_timesteps = round(duration * SAMPLE_RATE)
    audio = torch.rand((1, 2, nb_timesteps), generator=gen) * 2 - 1
    spec = torch.stft(
        audio.reshape(-1, nb_timesteps),
        N_FFT,
        N_HOP,
        window=torch.hann_window(N_FFT),
        center=True,
        pad_mode="reflect",
        return_complex=True,
    ).abs()  # (2, F, T)
    bin_mean = spec.mean(dim=(0, 2))
    bin_std = spec.std(dim=(0, 2)).clamp_min(1e-3)
    layout = _layout()
    weights = {t: _random_state_dict(gen, layout, bin_mean, bin_std) for t in TARGETS}
    directory.mkdir(parents=True, exist_ok=True)
    audio_path, weights_path = directory / "audio.npy", directory / "weights.pt"
    np.save(audio_path, audio.numpy())
    torch.save(weights, weights_path)
    return {"audio": str(audio_path), "weights": str(weights_path)}


# ----------------------------------------------------------------------------------------------------------------------
# the two separators
# ----------------------------------------------------------------------------------------------------------------------
def chunk_support(separator_cls: type) -> str | None:
    """How this unmix version takes ``chunk_seconds``: ``"init"`` (constructor parameter), ``"separate_long"``
    (a ``separate_long(audio, chunk_seconds=..., context_seconds=...)`` method) or None (no chunked mode)."""
    if "chunk_seconds" in inspect.signature(separator_cls.__init__).parameters:
        return "init"
    method = getattr(separator_cls, "separate_long", None)
    if method is not None and "chunk_seconds" in inspect.signature(method).parameters:
        return "separate_long"
    return None


def build_separator(
    impl: str, weights_path: str, chunk_seconds: float | None = None, context_seconds: float | None = None
) -> tuple[Any, Callable[[Any], Any], dict]:
    """Build the frozen 4-target separator of ``impl`` ("upstream" or "unmix") with the benchmark weights.

    Returns:
        ``(separator, separate, info)``: ``separate(audio)`` runs one separation (``forward``, or unmix's chunked
        mode when ``chunk_seconds`` is given and supported); ``info["chunk_via"]`` says how chunking was applied
        (None: whole track).
    """
    import torch

    info: dict[str, Any] = {"chunk_via": None}
    if impl == "upstream":
        install_torchaudio_stub()
        from openunmix.model import OpenUnmix, Separator
    elif impl == "unmix":
        from unmix import OpenUnmix, Separator  # type: ignore[no-redef]
    else:
        raise ValueError(f"impl must be 'upstream' or 'unmix', got {impl!r}")
    weights = torch.load(weights_path, map_location="cpu", weights_only=True)
    models = {}
    for target in TARGETS:
        model = OpenUnmix(**MODEL_KWARGS)
        model.load_state_dict(weights[target], strict=True)
        models[target] = model
    del weights
    kwargs = dict(SEPARATOR_KWARGS)
    # The chunked mode is new in unmix: use it only in the form this version of the Separator offers.
    mode = chunk_support(Separator) if impl == "unmix" and chunk_seconds is not None else None
    if mode == "init":
        kwargs["chunk_seconds"] = chunk_seconds
    separator = Separator(models, **kwargs)
    separator.freeze()  # upstream's freeze() returns None, unmix's returns self: call it as a statement
    separate = separator
    if mode == "separate_long":
        extra: dict[str, Any] = {"chunk_seconds": chunk_seconds}
        if context_seconds is not None and "context_seconds" in inspect.signature(separator.separate_long).parameters:
            extra["context_seconds"] = context_seconds
            info["context_seconds"] = context_seconds

        def separate(audio: Any) -> Any:
            return separator.separate_long(audio, **extra)

    info["chunk_via"] = mode
    return separator, separate, info

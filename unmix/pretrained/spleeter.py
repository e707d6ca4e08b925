"""Spleeter models without TensorFlow: configurations, checkpoint conversion and the Separator for them.

A Spleeter model is a JSON configuration (keys as in Spleeter: ``instrument_list``, ``model_dir``, ``sample_rate``,
``frame_length``, ``frame_step``, ``T``, ``F``, ``n_channels``, ``separation_exponent``, ``mask_extension``,
``model.type``/``model.params``, optionally ``MWF``) and a TensorFlow checkpoint folder with one U-Net per
instrument. The checkpoint is read with :mod:`unmix.pretrained.tf_checkpoint`, mapped onto :class:`~unmix.models.unet.
UNet` state dicts (see the mapping table there) and cached as a plain state dict ``unmix-converted-<digest>.pth``
in ``unmix.pretrained.download.cache_dir()/spleeter`` (never in the model folder), so the conversion runs once.

The embedded configurations of the released models (``2stems``, ``4stems``, ``5stems`` and their ``-16kHz``
variants) are data files in ``spleeter_configs/``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from unmix.dsp.stft_spleeter import SpleeterSTFT
from unmix.errors import ModelLoadingError, ModelNotFoundError
from unmix.models.unet import DEFAULT_FILTERS, UNet
from unmix.pretrained.tf_checkpoint import read_checkpoint, resolve_prefix
from unmix.separator import Separator
from unmix.utils.atomic import atomic_torch_save

logger = logging.getLogger(__name__)

CONFIG_FOLDER = Path(__file__).resolve().parent / "spleeter_configs"
EMBEDDED_CONFIGS = ("2stems", "2stems-16kHz", "4stems", "4stems-16kHz", "5stems", "5stems-16kHz")
MODEL_TYPES = {"unet.unet": False, "unet.softmax_unet": True}  # type -> output_logits
EPSILON = 1e-10  # Spleeter's EPSILON in the ratio masks
CONVERTER_VERSION = 1
_REQUIRED = ("instrument_list", "model_dir", "sample_rate", "frame_length", "frame_step", "T", "F", "n_channels")


@dataclass(frozen=True)
class SpleeterConfig:
    """A validated Spleeter configuration (only the keys inference needs)."""

    instrument_list: tuple[str, ...]
    model_dir: str
    sample_rate: float
    frame_length: int
    frame_step: int
    T: int  # noqa: N815 (Spleeter's key)
    F: int  # noqa: N815
    n_channels: int = 2
    separation_exponent: float = 2.0
    mask_extension: str = "zeros"
    model_type: str = "unet.unet"
    model_params: dict[str, Any] = field(default_factory=dict)
    mix_name: str = "mix"
    MWF: bool = False  # noqa: N815
    source: Path | None = None  # the JSON file it came from, if any

    def unet_kwargs(self) -> dict[str, Any]:
        """Constructor arguments of one instrument's :class:`UNet`."""
        return {
            "nb_channels": self.n_channels,
            "nb_bins": self.F,
            "segment_frames": self.T,
            "conv_activation": self.model_params.get("conv_activation"),
            "deconv_activation": self.model_params.get("deconv_activation"),
            "output_logits": MODEL_TYPES[self.model_type],
            "conv_n_filters": tuple(self.model_params.get("conv_n_filters", DEFAULT_FILTERS)),
        }


def embedded_config(name: str) -> dict[str, Any]:
    """The configuration of a released Spleeter model (``"4stems"`` or ``"spleeter:4stems"``) as a dict."""
    short = name.split(":", 1)[1] if name.startswith("spleeter:") else name
    if short not in EMBEDDED_CONFIGS:
        raise ModelNotFoundError(f"no embedded Spleeter configuration {name!r}; available: "
                                 f"{', '.join('spleeter:' + n for n in EMBEDDED_CONFIGS)}")
    with open(CONFIG_FOLDER / f"{short}.json", encoding="utf-8") as handle:
        return dict(json.load(handle))


def _number(raw: Mapping[str, Any], key: str, where: str, kind: type = int, positive: bool = True) -> Any:
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and int(value) != value):
        raise ModelLoadingError(f"{where}: '{key}' must be {'an integer' if kind is int else 'a number'}, "
                                f"got {value!r}")
    if positive and value <= 0:
        raise ModelLoadingError(f"{where}: '{key}' must be positive, got {value!r}")
    return kind(value)


def parse_config(config: str | Path | Mapping[str, Any]) -> SpleeterConfig:
    """Read and validate a Spleeter configuration.

    Args:
        config: a JSON file path, ``"spleeter:<name>"`` for an embedded configuration, or a dict.

    Returns:
        The validated configuration.

    Raises:
        ModelLoadingError: unreadable file, missing key or invalid value (the message names it).
        ModelNotFoundError: unknown embedded name.
    """
    source: Path | None = None
    if isinstance(config, Mapping):
        raw = dict(config)
    elif str(config).startswith("spleeter:"):
        raw = embedded_config(str(config))
    else:
        source = Path(config).expanduser()
        try:
            raw = json.loads(source.read_text(encoding="utf-8"))
        except FileNotFoundError as err:
            raise ModelLoadingError(f"Spleeter configuration {source} not found; give an existing .json file or "
                                    f"one of {', '.join('spleeter:' + n for n in EMBEDDED_CONFIGS)}") from err
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ModelLoadingError(f"cannot read Spleeter configuration {source}: {err}") from err
        if not isinstance(raw, dict):
            raise ModelLoadingError(f"{source} must hold a JSON object, found {type(raw).__name__}")
    where = str(source) if source else "Spleeter configuration"
    missing = [key for key in _REQUIRED if key not in raw]
    if missing:
        raise ModelLoadingError(f"{where} lacks the key(s) {missing}; see the released configs in {CONFIG_FOLDER}")
    instruments = raw["instrument_list"]
    if (not isinstance(instruments, list) or not instruments or not all(isinstance(i, str) and i for i in instruments)
            or len(set(instruments)) != len(instruments)):
        raise ModelLoadingError(f"{where}: 'instrument_list' must be a non-empty list of distinct names, got "
                                f"{instruments!r}")
    if not isinstance(raw["model_dir"], str) or not raw["model_dir"]:
        raise ModelLoadingError(f"{where}: 'model_dir' must be a non-empty string, got {raw['model_dir']!r}")
    model = raw.get("model", {})
    model_type = model.get("type", "unet.unet") if isinstance(model, dict) else None
    params = model.get("params", {}) if isinstance(model, dict) else None
    if model_type not in MODEL_TYPES or not isinstance(params, dict):
        raise ModelLoadingError(f"{where}: 'model' must be {{'type': one of {sorted(MODEL_TYPES)}, 'params': {{...}}}}"
                                f", got {model!r} (Spleeter's BLSTM model is not supported)")
    parsed = SpleeterConfig(
        instrument_list=tuple(instruments), model_dir=raw["model_dir"],
        sample_rate=_number(raw, "sample_rate", where, float), frame_length=_number(raw, "frame_length", where),
        frame_step=_number(raw, "frame_step", where), T=_number(raw, "T", where), F=_number(raw, "F", where),
        n_channels=_number(raw, "n_channels", where),
        separation_exponent=_number(raw, "separation_exponent", where, float) if "separation_exponent" in raw else 2.0,
        mask_extension=raw.get("mask_extension", "zeros"), model_type=model_type, model_params=dict(params),
        mix_name=str(raw.get("mix_name", "mix")), MWF=bool(raw.get("MWF", False)), source=source)
    if parsed.mask_extension not in ("zeros", "average"):
        raise ModelLoadingError(f"{where}: 'mask_extension' must be 'zeros' or 'average', got "
                                f"{parsed.mask_extension!r}")
    if parsed.n_channels != 2:
        raise ModelLoadingError(f"{where}: 'n_channels' is {parsed.n_channels}; Spleeter's U-Net is stereo, use 2")
    if parsed.F > parsed.frame_length // 2 + 1:
        raise ModelLoadingError(f"{where}: F={parsed.F} exceeds the {parsed.frame_length // 2 + 1} bins of a "
                                f"{parsed.frame_length}-point STFT; lower F or raise frame_length")
    for key in ("T", "F"):
        if getattr(parsed, key) % 64:
            raise ModelLoadingError(f"{where}: '{key}' = {getattr(parsed, key)} must be a multiple of 64")
    filters = params.get("conv_n_filters", DEFAULT_FILTERS)
    if not isinstance(filters, (list, tuple)) or len(filters) != 6 or not all(
            isinstance(f, int) and not isinstance(f, bool) and f > 0 for f in filters):
        raise ModelLoadingError(f"{where}: model.params.conv_n_filters must be six positive integers, got {filters!r}")
    return parsed


def resolve_model_dir(config: SpleeterConfig, model_dir: str | Path | None = None) -> Path:
    """The checkpoint folder: ``model_dir`` if given, else the config's (absolute; relative to the config's folder;
    then to ``$MODEL_PATH``, default ``pretrained_models``, as Spleeter does).

    Raises:
        ModelNotFoundError: no candidate folder exists (the message lists those tried).
    """
    if model_dir is not None:
        candidates = [Path(model_dir).expanduser()]
    else:
        configured = Path(config.model_dir).expanduser()
        candidates = [configured] if configured.is_absolute() else []
        if not configured.is_absolute():
            if config.source is not None:
                candidates.append(config.source.resolve().parent / configured)
            candidates.append(Path(os.environ.get("MODEL_PATH", "pretrained_models")).expanduser() / configured)
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise ModelNotFoundError(f"Spleeter model folder not found; tried {[str(c) for c in candidates]}. Pass "
                             "model_dir=..., set MODEL_PATH, or load a registered name such as 'spleeter:2stems' "
                             "to download it")


def _tf_name(base: str, index: int) -> str:
    return base if index == 0 else f"{base}_{index}"


def tf_variable_map(instrument_index: int) -> dict[str, tuple[str, bool]]:
    """State-dict key of one :class:`UNet` -> (TF variable name, needs ``permute(3, 2, 0, 1)``).

    Args:
        instrument_index: position of the instrument in ``instrument_list``.
    """
    i = instrument_index
    mapping: dict[str, tuple[str, bool]] = {}

    def batch_norm(prefix: str, tf_layer: str) -> None:
        for ours, theirs in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"),
                             ("running_var", "moving_variance")):
            mapping[f"{prefix}.{ours}"] = (f"{tf_layer}/{theirs}", False)

    for k in range(6):
        conv = _tf_name("conv2d", 7 * i + k)
        mapping[f"encoder.{k}.conv.weight"] = (f"{conv}/kernel", True)
        mapping[f"encoder.{k}.conv.bias"] = (f"{conv}/bias", False)
        if k < 5:  # encoder BatchNorm 6 is dead code in Spleeter
            batch_norm(f"encoder.{k}.bn", _tf_name("batch_normalization", 12 * i + k))
        deconv = _tf_name("conv2d_transpose", 6 * i + k)
        mapping[f"decoder.{k}.deconv.weight"] = (f"{deconv}/kernel", True)
        mapping[f"decoder.{k}.deconv.bias"] = (f"{deconv}/bias", False)
        batch_norm(f"decoder.{k}.bn", _tf_name("batch_normalization", 12 * i + 6 + k))
    final = _tf_name("conv2d", 7 * i + 6)
    mapping["mask.weight"] = (f"{final}/kernel", True)
    mapping["mask.bias"] = (f"{final}/bias", False)
    return mapping


def convert_tensors(
    tensors: Mapping[str, np.ndarray], instruments: Sequence[str]
) -> dict[str, dict[str, torch.Tensor]]:
    """Map checkpoint tensors onto one :class:`UNet` state dict per instrument (in ``instruments`` order).

    Raises:
        ModelLoadingError: a variable is missing or malformed, or the checkpoint holds another number of U-Nets.
    """
    layers = {m.group(1) for name in tensors if (m := re.fullmatch(r"(conv2d(?:_\d+)?)/kernel", name))}
    if len(layers) != 7 * len(instruments):
        raise ModelLoadingError(f"the checkpoint holds {len(layers) / 7:g} U-Nets ({len(layers)} conv2d layers) but "
                                f"the configuration lists {len(instruments)} instruments {list(instruments)}; use "
                                "the configuration that matches this model folder")
    states: dict[str, dict[str, torch.Tensor]] = {}
    for index, instrument in enumerate(instruments):
        state: dict[str, torch.Tensor] = {}
        for key, (tf_name, permute) in tf_variable_map(index).items():
            if tf_name not in tensors:
                raise ModelLoadingError(f"variable {tf_name!r} (for {instrument}.{key}) is missing from the "
                                        "checkpoint; it is not a Spleeter U-Net checkpoint")
            array = np.asarray(tensors[tf_name], dtype=np.float32)
            if array.ndim != (4 if permute else 1):
                raise ModelLoadingError(f"variable {tf_name!r} has shape {array.shape}, expected "
                                        f"{'a 4-D kernel' if permute else 'a vector'}")
            tensor = torch.from_numpy(array.copy())
            state[key] = tensor.permute(3, 2, 0, 1).contiguous() if permute else tensor
        states[instrument] = state
    return states


def convert_checkpoint(model_dir: str | Path, config: str | Path | Mapping[str, Any] | SpleeterConfig
                       ) -> dict[str, dict[str, torch.Tensor]]:
    """Convert a Spleeter checkpoint folder into ``{instrument: UNet state dict}`` (no cache).

    Args:
        model_dir: folder holding ``checkpoint``, ``model.index`` and ``model.data-*`` (or a checkpoint prefix).
        config: the model's configuration (file, ``"spleeter:<name>"``, dict or parsed).

    Raises:
        CheckpointFormatError: the checkpoint is missing, truncated or corrupted.
        ModelLoadingError: it does not match the configuration.
    """
    parsed = config if isinstance(config, SpleeterConfig) else parse_config(config)
    return convert_tensors(read_checkpoint(model_dir), parsed.instrument_list)


def _default_cache_dir() -> Path:
    from unmix.pretrained.download import cache_dir

    return cache_dir() / "spleeter"


def converted_weights(model_dir: str | Path, config: SpleeterConfig, cache_dir: str | Path | None = None
                      ) -> dict[str, dict[str, torch.Tensor]]:
    """Converted state dicts, read from the conversion cache or converted once and cached (atomic write).

    The cache file ``unmix-converted-<digest>.pth`` is a flat state dict ``{"<instrument>.<key>": tensor}``
    loadable with ``torch.load(weights_only=True)``; the digest covers the checkpoint index (which holds the CRC32C
    of every tensor), the instrument list and the converter version. It is written to ``cache_dir`` (default
    ``unmix.pretrained.download.cache_dir()/spleeter``), never into the model folder (which may be shared or
    read-only); a file of that name already in the model folder (shipped pre-converted) is used too.
    """
    prefix = resolve_prefix(model_dir)
    index_bytes = prefix.with_name(prefix.name + ".index").read_bytes()
    digest = hashlib.sha256(index_bytes + json.dumps([CONVERTER_VERSION, config.instrument_list]).encode()).hexdigest()
    name = f"unmix-converted-{digest[:16]}.pth"
    cache = Path(cache_dir).expanduser() if cache_dir is not None else _default_cache_dir()
    for path in (cache / name, prefix.parent / name):
        if path.is_file():
            try:
                flat = torch.load(path, map_location="cpu", weights_only=True)
                states = {inst: {k[len(inst) + 1:]: v for k, v in flat.items() if k.startswith(inst + ".")}
                          for inst in config.instrument_list}
                if all(set(states[inst]) == set(tf_variable_map(0)) for inst in config.instrument_list):
                    logger.debug("loaded converted Spleeter weights from %s", path)
                    return states
                logger.warning("ignoring conversion cache %s: unexpected keys", path)
            except Exception as err:  # corrupt cache: reconvert
                logger.warning("ignoring unreadable conversion cache %s (%s)", path, err)
    states = convert_tensors(read_checkpoint(prefix), config.instrument_list)
    flat = {f"{inst}.{key}": value for inst, state in states.items() for key, value in state.items()}
    try:
        cache.mkdir(parents=True, exist_ok=True)
        atomic_torch_save(cache / name, flat)
        logger.info("cached converted Spleeter weights in %s", cache / name)
    except OSError as err:  # a cache is an optimisation: separate anyway
        logger.warning("could not cache the converted weights in %s (%s); they will be converted again next time",
                       cache, err)
    return states


def load_spleeter_separator(
    config: str | Path | Mapping[str, Any],
    model_dir: str | Path | None = None,
    MWF: bool = False,  # noqa: N803 (Spleeter's spelling)
    targets: str | Sequence[str] | None = None,
    device: str | torch.device = "cpu",
    residual: bool | str = False,
    cache_dir: str | Path | None = None,
    pretrained: bool = True,
) -> Separator:
    """Build a Separator equivalent to ``spleeter.separator.Separator(config, MWF=MWF)``.

    Args:
        config: Spleeter configuration (JSON path, ``"spleeter:<name>"`` or dict).
        model_dir: checkpoint folder; default: the config's ``model_dir`` (see :func:`resolve_model_dir`).
        MWF: multichannel Wiener filtering (norbert defaults) instead of ratio masks; also enabled by ``"MWF": true``
            in the configuration.
        targets: instruments to output (default all); every U-Net still runs.
        device: device of the returned separator.
        residual: add ``mixture - sum(targets)`` as an extra output.
        cache_dir: where to look for / write the converted weights (default: the download cache's ``spleeter/``).
        pretrained: load the checkpoint; False builds the same architecture with random weights (no model folder
            needed).

    Returns:
        The separator, in eval mode; ``separate(waveform (nb_timesteps, 2))`` returns ``{instrument: (nb_timesteps,
        2)}`` like Spleeter.
    """
    parsed = parse_config(config)
    models: dict[str, nn.Module] = {}
    states = converted_weights(resolve_model_dir(parsed, model_dir), parsed, cache_dir) if pretrained else {}
    for instrument in parsed.instrument_list:
        unet = UNet(**parsed.unet_kwargs())
        if pretrained:
            try:
                unet.load_state_dict(states[instrument], strict=True)
            except RuntimeError as err:
                raise ModelLoadingError(f"converted weights of {instrument!r} do not fit the configured U-Net "
                                        f"(model.params {parsed.model_params}): {err}") from err
        models[instrument] = unet
    common: dict[str, Any] = {"sample_rate": parsed.sample_rate, "n_fft": parsed.frame_length,
                              "n_hop": parsed.frame_step, "nb_channels": parsed.n_channels, "residual": residual,
                              "stft": SpleeterSTFT(parsed.frame_length, parsed.frame_step)}
    if MWF or parsed.MWF:
        options = {"niter": 1, "softmask": True, "alpha": 1.0, "wiener_win_len": None,
                   "wiener_eps": float(np.finfo(np.float32).eps)}
    else:
        options = {"niter": 0, "softmask": True, "alpha": parsed.separation_exponent, "wiener_win_len": None,
                   "mask_extension": parsed.mask_extension, "wiener_eps": EPSILON}
    selected = [targets] if isinstance(targets, str) else targets
    separator = Separator(models, outputs=selected, **common, **options)
    return separator.to(device).eval()


__all__ = [
    "EMBEDDED_CONFIGS", "SpleeterConfig", "convert_checkpoint",
    "convert_tensors", "converted_weights", "embedded_config", "load_spleeter_separator", "parse_config",
    "resolve_model_dir", "tf_variable_map",
]

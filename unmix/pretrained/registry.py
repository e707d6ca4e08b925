"""The pretrained-model registry: one table of frozen records, plus the functions that fetch and build them.

Every released model is one :class:`PretrainedModel` row: where its files live (upstream's URLs and file names),
their expected SHA-256 (upstream's 8-hex prefixes for Open-Unmix, full hashes for Spleeter's release archives),
its STFT, architecture, targets and licence. Files are downloaded into :func:`~unmix.pretrained.download.cache_dir`
under upstream's own names, so a torch.hub cache filled by upstream ``openunmix`` is reused as is.

Checksum override: ``$UNMIX_CHECKSUMS`` may name a JSON file ``{"<file name>": "<sha256 or hex prefix>"}`` whose
entries replace the table's expected hashes (re-packed mirrors, tests); every use is logged as a warning.

A failed or unverified download is always an error: a pretrained model is never silently replaced by random
weights (Spleeter's failure mode, whose "separated" files are near-copies of the input).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch
from torch import nn

from unmix.errors import ModelLoadingError, ModelNotFoundError, TargetNotFoundError
from unmix.pretrained.download import cache_dir, download, download_archive

logger = logging.getLogger(__name__)

ENV_CHECKSUMS = "UNMIX_CHECKSUMS"
DEFAULT_MODEL = "umxl"


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    """One downloadable file of a pretrained model.

    Attributes:
        file_name: name in the cache (upstream's name, carrying its hash prefix for Open-Unmix weights).
        url: upstream URL; ``$UNMIX_MIRROR`` replaces everything before the file name.
        sha256_prefix: expected leading hex digits of the file's SHA-256.
        sha256: expected full SHA-256 (hex).
        target: the target whose weights the file holds; None for an archive holding the whole model.
    """

    file_name: str
    url: str
    sha256_prefix: str | None = None
    sha256: str | None = None
    target: str | None = None


@dataclasses.dataclass(frozen=True)
class PretrainedModel:
    """A released pretrained model (one row of the registry).

    Attributes:
        name: registry name (``umxl``, ``spleeter:4stems`` ...).
        family: ``"openunmix"`` (one BiLSTM per target), ``"spleeter"`` (U-Nets from a TF checkpoint archive) or
            ``"embedded"`` (a model folder shipped inside the package, no download).
        files: the files to download: one per target (Open-Unmix) or one archive (Spleeter).
        sample_rate: sample rate the model expects, in Hz.
        n_fft: STFT size.
        n_hop: STFT hop.
        nb_channels: audio channels the model takes.
        targets: the targets in upstream's default order.
        licence: licence of the weights.
        description: one line on training data and use.
        source: DOI or release page the files come from.
        hidden_size: Open-Unmix width (None for Spleeter).
        max_bin: number of low frequency bins the network sees (Open-Unmix ``max_bin``, Spleeter ``F``).
        config: Spleeter embedded configuration name (``spleeter:<config>``, see :mod:`unmix.pretrained.spleeter`).
        package_dir: ``embedded`` models: the folder under ``unmix/pretrained/embedded`` (Open-Unmix layout).
    """

    name: str
    family: str
    files: tuple[RemoteFile, ...]
    sample_rate: float
    n_fft: int
    n_hop: int
    nb_channels: int
    targets: tuple[str, ...]
    licence: str
    description: str
    source: str
    hidden_size: int | None = None
    max_bin: int | None = None
    config: str | None = None
    package_dir: str | None = None

    @property
    def nb_bins(self) -> int:
        """Number of STFT bins, ``n_fft // 2 + 1``."""
        return self.n_fft // 2 + 1

    def file_for(self, target: str) -> RemoteFile:
        """The weight file of ``target`` (Open-Unmix models)."""
        for remote in self.files:
            if remote.target == target:
                return remote
        raise TargetNotFoundError(f"model {self.name!r} has no target {target!r}; its targets are {list(self.targets)}")


def _zenodo(record: int, entries: Sequence[tuple[str, str, str]]) -> tuple[RemoteFile, ...]:
    """Files ``(target, file name, sha256 prefix)`` of a Zenodo record."""
    base = f"https://zenodo.org/records/{record}/files"
    return tuple(RemoteFile(name, f"{base}/{name}", sha256_prefix=prefix, target=t) for t, name, prefix in entries)


_MUSDB = ("vocals", "drums", "bass", "other")
_MIT = "MIT"
_UMX_COMMON: dict[str, Any] = dict(family="openunmix", sample_rate=44100.0, n_fft=4096, n_hop=1024, nb_channels=2,
                                   targets=_MUSDB, max_bin=1487)

_OPENUNMIX = (
    PretrainedModel(
        name="umx", hidden_size=512, licence=_MIT, source="https://doi.org/10.5281/zenodo.3370486",
        description="Open-Unmix trained on MUSDB18 (AAC, band-limited to 16 kHz)",
        files=_zenodo(3370486, [
            ("vocals", "vocals-c8df74a5.pth", "c8df74a5"),
            ("drums", "drums-5a48008b.pth", "5a48008b"),
            ("bass", "bass-646024d3.pth", "646024d3"),
            ("other", "other-f8e132cc.pth", "f8e132cc"),
        ]),
        **_UMX_COMMON,
    ),
    PretrainedModel(
        name="umxhq", hidden_size=512, licence=_MIT, source="https://doi.org/10.5281/zenodo.3370489",
        description="Open-Unmix trained on MUSDB18-HQ (uncompressed, full bandwidth)",
        files=_zenodo(3370489, [
            ("vocals", "vocals-b62c91ce.pth", "b62c91ce"),
            ("drums", "drums-9619578f.pth", "9619578f"),
            ("bass", "bass-8d85a5bd.pth", "8d85a5bd"),
            ("other", "other-b52fbbf7.pth", "b52fbbf7"),
        ]),
        **_UMX_COMMON,
    ),
    PretrainedModel(
        name="umxl", hidden_size=1024, licence="CC BY-NC-SA 4.0 (weights: non-commercial use only)",
        source="https://doi.org/10.5281/zenodo.5069601",
        description="Open-Unmix large, trained on ~400 h of private stems; upstream's default and best model",
        files=_zenodo(5069601, [
            ("vocals", "vocals-bccbd9aa.pth", "bccbd9aa"),
            ("drums", "drums-69e0ebd4.pth", "69e0ebd4"),
            ("bass", "bass-2ca1ce51.pth", "2ca1ce51"),
            ("other", "other-c8c5b3e6.pth", "c8c5b3e6"),
        ]),
        **_UMX_COMMON,
    ),
    PretrainedModel(
        name="umxse", family="openunmix", sample_rate=16000.0, n_fft=1024, n_hop=512, nb_channels=1,
        targets=("speech", "noise"), hidden_size=256, max_bin=513,
        licence="MIT (open-unmix project; the Zenodo record states no licence)",
        source="https://doi.org/10.5281/zenodo.3786908",
        description="Open-Unmix speech enhancement (Sony), Voicebank+DEMAND 28 speakers, 16 kHz mono",
        files=_zenodo(3786908, [  # upstream names these with an underscore, not a dash
            ("speech", "speech_f5e0d9f9.pth", "f5e0d9f9"),
            ("noise", "noise_04a6fc2d.pth", "04a6fc2d"),
        ]),
    ),
)

_SPLEETER_RELEASE = "https://github.com/deezer/spleeter/releases/download/v1.4.0"
# Full SHA-256 of the release archives, as checked by spleeter's own test suite (tests/test_github_model_provider.py).
_SPLEETER_ARCHIVES = {
    "2stems": ("f3a90b39dd2874269e8b05a48a86745df897b848c61f3958efc80a39152bd692", ("vocals", "accompaniment"),
               "vocals / accompaniment; LeakyReLU encoder, ReLU decoder"),
    "4stems": ("3adb4a50ad4eb18c7c4d65fcf4cf2367a07d48408a5eb7d03cd20067429dfaa8", _MUSDB,
               "vocals / drums / bass / other; ELU"),
    "5stems": ("25a1e87eb5f75cc72a4d2d5467a0a50ac75f05611f877c278793742513cc7218",
               ("vocals", "piano", "drums", "bass", "other"), "vocals / piano / drums / bass / other; ELU, softmax"),
}


def _spleeter(stems: str, wide: bool) -> PretrainedModel:
    sha256, targets, what = _SPLEETER_ARCHIVES[stems]
    config = f"{stems}-16kHz" if wide else stems
    note = f"; spleeter:{stems}'s checkpoint (trained on F=1024) run on F=1536 bins, up to 16.5 kHz" if wide else ""
    return PretrainedModel(
        name=f"spleeter:{config}", family="spleeter", sample_rate=44100.0, n_fft=4096, n_hop=1024, nb_channels=2,
        targets=targets, max_bin=1536 if wide else 1024, config=config, licence="MIT (deezer/spleeter)",
        source=f"{_SPLEETER_RELEASE}/",
        description=f"Spleeter U-Net, {what}{note}",
        # the -16kHz configurations keep model_dir "<stems>", so they use the same archive
        files=(RemoteFile(f"{stems}.tar.gz", f"{_SPLEETER_RELEASE}/{stems}.tar.gz", sha256=sha256),),
    )


def _packaged(folder: str, entries: Sequence[tuple[str, str]]) -> tuple[RemoteFile, ...]:
    """Files ``(target, sha256)`` of a model folder shipped in ``unmix/pretrained/embedded/<folder>``."""
    return tuple(RemoteFile(f"{t}.pth", f"package:unmix/pretrained/embedded/{folder}/{t}.pth", sha256=h, target=t)
                 for t, h in entries)


_EMBEDDED = (
    PretrainedModel(
        name="demo", family="embedded", package_dir="demo", sample_rate=44100.0, n_fft=4096, n_hop=1024,
        nb_channels=2, targets=_MUSDB, hidden_size=32, max_bin=1025,
        licence="MIT (trained only on procedural songs rendered with the FluidR3_GM soundfont, MIT)",
        source="shipped with unmix: unmix/pretrained/embedded/demo (model card: README.md there)",
        description="tiny offline demo Open-Unmix (4 x 0.9 MB) trained on 28 synthetic 20-s songs; "
                    "expect low quality on real music",
        files=_packaged("demo", [
            ("vocals", "f606158e1fd3ed2ba787a84f6fe0602f8e1e6438200b2607baf4ed17a2ce8b4b"),
            ("drums", "f67e0a3b3a1224cf84718b9b03d0cf7a5d6d72ddbf862fc542973642b42a3f4f"),
            ("bass", "933f8a8624e0df090f944531fd7cdaf0ec035006f9242de301ee4cc1bcc75bfe"),
            ("other", "43c05f553527a9e1825daaa72012a271d0cf6e51db15615c38e7e5729577e38d"),
        ]),
    ),
)

#: Every registered model, by name (read-only).
MODELS: Mapping[str, PretrainedModel] = MappingProxyType(
    {m.name: m for m in _OPENUNMIX + tuple(_spleeter(s, w) for s in _SPLEETER_ARCHIVES for w in (False, True))
     + _EMBEDDED}
)


def list_models(family: str | None = None) -> list[str]:
    """Names of the registered pretrained models, optionally of one family (``openunmix``, ``spleeter``, ``embedded``)."""
    return [name for name, model in MODELS.items() if family is None or model.family == family]


def get_model_info(name: str | PretrainedModel) -> PretrainedModel:
    """The registry record of ``name`` (a record passes through unchanged).

    Raises:
        ModelNotFoundError: the name is not registered; the message lists every registered name.
    """
    if isinstance(name, PretrainedModel):
        return name
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        raise ModelNotFoundError(
            f"unknown pretrained model {name!r}; registered models: {', '.join(MODELS)}. "
            "A model folder or a Spleeter .json configuration path is accepted by unmix.load_separator too."
        ) from None


def format_model_list() -> str:
    """Human-readable table of the registered models: targets, sample rate, licence (for ``--list-models``)."""
    lines = [f"{'name':<22} {'rate':>6}  {'targets':<34} licence"]
    for model in MODELS.values():
        default = " (default)" if model.name == DEFAULT_MODEL else ""
        targets = ",".join(model.targets)
        lines.append(f"{model.name + default:<22} {int(model.sample_rate):>6}  {targets:<34} {model.licence}")
        lines.append(f"{'':<22} {model.description}")
    return "\n".join(lines)


def checksum_overrides() -> dict[str, str]:
    """Expected hashes from the JSON file named by ``$UNMIX_CHECKSUMS`` (``{}`` when unset).

    Raises:
        ModelLoadingError: the file cannot be read or is not a ``{file name: hex}`` object.
    """
    path = os.environ.get(ENV_CHECKSUMS)
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as handle:
            table = json.load(handle)
    except (OSError, json.JSONDecodeError) as err:
        raise ModelLoadingError(
            f"cannot read {ENV_CHECKSUMS}={path}: {err}. Point it to a JSON file or unset it."
        ) from err
    if not isinstance(table, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in table.items()):
        raise ModelLoadingError(f"{ENV_CHECKSUMS}={path} must hold a JSON object {{file name: sha256 hex}}.")
    return table


def _expected_hash(remote: RemoteFile, overrides: Mapping[str, str]) -> tuple[str | None, str | None]:
    """``(sha256_prefix, sha256)`` expected for ``remote``, after ``$UNMIX_CHECKSUMS`` overrides."""
    override = overrides.get(remote.file_name)
    if override is None:
        return remote.sha256_prefix, remote.sha256
    logger.warning("expected sha256 of %s taken from %s: %s", remote.file_name, ENV_CHECKSUMS, override)
    return (None, override) if len(override.strip()) == 64 else (override, None)


def _select_targets(model: PretrainedModel, targets: str | Sequence[str] | None) -> list[str]:
    if targets is None:
        return list(model.targets)
    selected = [targets] if isinstance(targets, str) else list(targets)
    unknown = [t for t in selected if t not in model.targets]
    if unknown or not selected:
        raise TargetNotFoundError(
            f"model {model.name!r} has no target(s) {unknown or selected}; its targets are {list(model.targets)}"
        )
    return selected


def embedded_dir(name: str | PretrainedModel, verify: bool = True) -> Path:
    """The packaged folder of an ``embedded`` model (Open-Unmix layout), its weight files checked by SHA-256.

    Raises:
        ModelLoadingError: not an embedded model, or its folder is missing from the installation.
        ChecksumError: a packaged weight file does not match its registered hash (a damaged installation).
    """
    from importlib import resources

    from unmix.errors import ChecksumError
    from unmix.pretrained.download import sha256_of

    model = get_model_info(name)
    if model.family != "embedded" or not model.package_dir:
        raise ModelLoadingError(f"{model.name!r} is a {model.family} model, not one shipped inside unmix.")
    folder = Path(str(resources.files("unmix.pretrained").joinpath("embedded", model.package_dir)))
    if not (folder / "separator.json").is_file():
        raise ModelLoadingError(
            f"the packaged model folder {folder} is missing; reinstall unmix (package data unmix/pretrained/embedded)"
        )
    if verify:
        for remote in model.files:
            digest = sha256_of(folder / remote.file_name)
            if remote.sha256 and digest != remote.sha256:
                raise ChecksumError(
                    f"{folder / remote.file_name} has sha256 {digest}, expected {remote.sha256}; "
                    "the installation is damaged: reinstall unmix"
                )
    return folder


def fetch_weights(
    name: str | PretrainedModel, targets: str | Sequence[str] | None = None, progress: bool = True
) -> dict[str, Path]:
    """Download (or find in the cache) the verified weight files of an Open-Unmix model.

    Returns:
        ``{target: path of its weight file}``.

    Raises:
        DownloadError, ChecksumError: a file could not be fetched or verified (the message says how to place it).
    """
    model = get_model_info(name)
    if model.family == "embedded":
        folder = embedded_dir(model)
        return {target: folder / model.file_for(target).file_name for target in _select_targets(model, targets)}
    if model.family != "openunmix":
        raise ModelLoadingError(f"{model.name!r} is a {model.family} model; use fetch_model_dir() for it.")
    overrides = checksum_overrides()
    paths = {}
    for target in _select_targets(model, targets):
        remote = model.file_for(target)
        prefix, full = _expected_hash(remote, overrides)
        paths[target] = download(remote.url, cache_dir() / remote.file_name, sha256_prefix=prefix, sha256=full,
                                 progress=progress)
    return paths


def fetch_model_dir(name: str | PretrainedModel, progress: bool = True) -> Path:
    """Download, verify and unpack a Spleeter release archive into ``<cache>/spleeter/<stems>``; return the folder."""
    model = get_model_info(name)
    if model.family != "spleeter":
        raise ModelLoadingError(f"{model.name!r} is a {model.family} model; use fetch_weights() for it.")
    if len(model.files) != 1:
        raise ModelLoadingError(f"{model.name!r}: a Spleeter model has one archive, found {len(model.files)} files.")
    (remote,) = model.files
    _, full = _expected_hash(remote, checksum_overrides())
    if full is None:
        raise ModelLoadingError(f"{model.name!r}: an archive needs a full sha256 (64 hex digits), not a prefix.")
    folder = cache_dir() / "spleeter" / remote.file_name.split(".")[0]
    return download_archive(remote.url, folder, sha256=full, progress=progress)


def download_model(name: str | PretrainedModel, progress: bool = True) -> list[Path]:
    """Fetch every file of a model into the cache (for offline use later); returns the weight files or folder."""
    model = get_model_info(name)
    if model.family == "spleeter":
        return [fetch_model_dir(model, progress)]
    if model.family == "embedded":
        return [embedded_dir(model)]
    return list(fetch_weights(model, None, progress).values())


def load_pretrained_target_models(
    name: str | PretrainedModel,
    targets: str | Sequence[str] | None = None,
    device: str | torch.device = "cpu",
    pretrained: bool = True,
) -> dict[str, nn.Module]:
    """Build the per-target Open-Unmix models of a registered model, with its weights.

    Args:
        name: registry name (``umx``, ``umxhq``, ``umxl``, ``umxse``) or a :class:`PretrainedModel`.
        targets: a target or list of targets; None means all, in upstream's order.
        device: device of the models.
        pretrained: download and load the weights; False gives the same architecture with random weights.

    Returns:
        ``{target: OpenUnmix}`` in eval mode (call ``.train()`` to fine-tune).

    Raises:
        ModelNotFoundError: unknown name. TargetNotFoundError: unknown target (the model's targets are listed).
        DownloadError, ChecksumError: the weights could not be fetched or verified.
    """
    from unmix.models.openunmix import OpenUnmix, load_weights
    from unmix.pretrained.local import load_state

    model = get_model_info(name)
    if model.family == "embedded":
        from unmix.pretrained.local import load_target_models

        folder = embedded_dir(model) if pretrained else embedded_dir(model, verify=False)
        return load_target_models(folder, _select_targets(model, targets), device, pretrained)
    if model.family != "openunmix":
        raise ModelLoadingError(
            f"{model.name!r} is a {model.family} model whose targets share one network; "
            "use load_pretrained_separator() for it."
        )
    selected = _select_targets(model, targets)
    paths = fetch_weights(model, selected) if pretrained else {}
    models: dict[str, nn.Module] = {}
    for target in selected:
        net = OpenUnmix(nb_bins=model.nb_bins, nb_channels=model.nb_channels, hidden_size=model.hidden_size or 512,
                        max_bin=model.max_bin)
        if pretrained:
            load_weights(net, load_state(paths[target], device="cpu"))
        models[target] = net.to(device).eval()
    return models


def load_pretrained_separator(
    name: str | PretrainedModel,
    targets: str | Sequence[str] | None = None,
    niter: int = 1,
    residual: bool | str = False,
    softmask: bool = False,
    alpha: float = 1.0,
    wiener_win_len: int | None = 300,
    device: str | torch.device = "cpu",
    pretrained: bool = True,
    MWF: bool = False,  # noqa: N803 (Spleeter's spelling)
) -> nn.Module:
    """Build a :class:`~unmix.separator.Separator` for a registered model.

    Args:
        name: registry name (``unmix.list_models()``) or a :class:`PretrainedModel`.
        targets: a target or list of targets; None means all, in upstream's order.
        niter: Wiener EM iterations (Open-Unmix models).
        residual: add a residual target (a string names it).
        softmask: start the EM from ratio masks (Open-Unmix models).
        alpha: ratio-mask exponent (Open-Unmix models).
        wiener_win_len: frames per Wiener block, None for the whole signal (Open-Unmix models).
        device: device of the separator.
        pretrained: download and load the weights; False gives random weights of the same architecture.
        MWF: Spleeter models: multichannel Wiener filtering instead of ratio masks.

    Returns:
        The separator in eval mode on ``device``.

    Raises:
        ModelNotFoundError: unknown name. TargetNotFoundError: unknown target (the model's targets are listed).
        DownloadError, ChecksumError: the weights could not be fetched or verified.
    """
    model = get_model_info(name)
    selected = _select_targets(model, targets)
    if model.family == "spleeter":
        from unmix.pretrained.spleeter import load_spleeter_separator

        separator = load_spleeter_separator(
            f"spleeter:{model.config}", model_dir=fetch_model_dir(model) if pretrained else None, MWF=MWF,
            targets=None if targets is None else selected, device=device, residual=residual, pretrained=pretrained,
        )
        return separator.to(device).eval()
    if MWF:
        raise ModelLoadingError(f"MWF applies to Spleeter models; {model.name!r} uses niter (Wiener EM iterations).")
    if model.family == "embedded":
        from unmix.pretrained.local import load_folder_separator

        folder = embedded_dir(model) if pretrained else embedded_dir(model, verify=False)
        separator = load_folder_separator(
            folder, selected, device, pretrained, niter=niter, softmask=softmask, alpha=alpha, residual=residual,
            wiener_win_len=wiener_win_len,
        )
        return separator.to(device).eval()
    from unmix.separator import Separator

    target_models = load_pretrained_target_models(model, selected, device, pretrained)
    separator = Separator(
        target_models, niter=niter, softmask=softmask, alpha=alpha, residual=residual,
        sample_rate=model.sample_rate, n_fft=model.n_fft, n_hop=model.n_hop, nb_channels=model.nb_channels,
        wiener_win_len=wiener_win_len,
    )
    return separator.to(device).eval()

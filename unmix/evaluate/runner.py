"""Separate the tracks of a MUSDB18 root with a model and score them (upstream Open-Unmix's ``eval.py``).

For every selected track: the mixture is brought to the model's rate and channels, separated, the estimates are
resampled back to the track's rate (and duplicated to its channels for a mono model) and scored with
:func:`unmix.evaluate.musdb.evaluate_track`. Per-track JSON files (museval layout), ``tracks.csv`` (frame medians per
track) and ``scores.csv`` (the SiSEC aggregate) are written to ``eval_dir``; estimates optionally to
``estimates_dir/<subset>/<track>/<target>.wav``. Tracks can be spread over worker processes (``cores``).
"""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from unmix._optional import require
from unmix.errors import UnmixError
from unmix.evaluate.musdb import (
    TrackScores,
    aggregate,
    evaluate_track,
    load_track_scores,
    save_track_scores,
    scores_to_csv,
    tracks_to_csv,
)
from unmix.utils.atomic import atomic_path

logger = logging.getLogger(__name__)

__all__ = ["MusdbSettings", "evaluate_musdb", "separate_track"]


@dataclass
class MusdbSettings:
    """What to evaluate and how (every field has upstream ``eval.py``'s default).

    Attributes:
        model: registered model name, model folder, Spleeter configuration ``.json``, or a separator module.
        root: MUSDB18 root (``train/`` and ``test/`` inside).
        subset: ``"test"`` or ``"train"``.
        split: with ``subset="train"``: ``"train"`` or ``"valid"`` (musdb's validation tracks).
        tracks: track names to evaluate (default: all of the subset).
        is_wav: the root holds decoded WAV folders instead of ``.stem.mp4`` files.
        targets: targets to separate (default: all of the model's).
        niter, residual, wiener_win_len: separator options (see :func:`unmix.load_separator`).
        aggregate_dict: ``{name: [targets]}`` sums to score instead of the targets.
        eval_dir: where the JSON and CSV files go (None: nothing written).
        estimates_dir: where the estimated stems go (None: not written).
        device: torch device for separation and scoring.
        cores: worker processes (1: in this process).
        chunk_seconds: separate in chunks of this length (bounded memory), None: whole tracks.
        resume: reuse the JSON of tracks already scored in ``eval_dir``.
        win, hop: BSSEval window and hop in seconds.
    """

    model: Any = "umxl"
    root: str | Path = ""
    subset: str = "test"
    split: str | None = None
    tracks: Sequence[str] | None = None
    is_wav: bool = False
    targets: Sequence[str] | None = None
    niter: int = 1
    residual: bool | str = False
    wiener_win_len: int | None = 300
    aggregate_dict: Mapping[str, Sequence[str]] | None = None
    eval_dir: str | Path | None = None
    estimates_dir: str | Path | None = None
    device: str = "cpu"
    cores: int = 1
    chunk_seconds: float | None = None
    resume: bool = False
    win: float = 1.0
    hop: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)


def separate_track(
    separator: nn.Module,
    audio: np.ndarray,
    rate: float,
    aggregate_dict: Mapping[str, Sequence[str]] | None = None,
    chunk_seconds: float | None = None,
) -> dict[str, np.ndarray]:
    """Separate one mixture and return the estimates at the mixture's rate, length and channel count.

    Args:
        separator: a :class:`~unmix.separator.Separator` (``sample_rate``, ``nb_channels``, ``to_dict``).
        audio: (nb_timesteps, nb_channels) mixture.
        rate: its sample rate in Hz.
        aggregate_dict: optional ``{name: [targets]}`` sums.
        chunk_seconds: separate chunk by chunk (``Separator.separate_long``), None: in one go.

    Returns:
        ``{target: (nb_timesteps, nb_channels) float32}``.
    """
    from unmix.audio import prepare_waveform, resample

    model_rate, channels = float(separator.sample_rate), int(separator.nb_channels)
    mixture = prepare_waveform(audio, rate, model_rate, channels, downmix=True)
    device = next((p.device for p in separator.parameters()), torch.device("cpu"))
    x = torch.as_tensor(np.ascontiguousarray(mixture.T), dtype=torch.float32, device=device)[None]
    with torch.inference_mode():
        estimates = separator(x) if chunk_seconds is None else separator.separate_long(x, chunk_seconds=chunk_seconds)
        named = separator.to_dict(estimates, aggregate_dict=aggregate_dict)
    out = {}
    for name, value in named.items():
        y = value[0].T.float().cpu().numpy()
        if model_rate != rate:
            y = resample(y, model_rate, rate)
        if y.shape[1] != audio.shape[1]:
            y = np.repeat(y.mean(1, keepdims=True), audio.shape[1], axis=1)
        length = audio.shape[0]
        out[name] = y[:length] if len(y) >= length else np.pad(y, [(0, length - len(y)), (0, 0)])
    return out


def _save_estimates(estimates: Mapping[str, np.ndarray], folder: Path, rate: float) -> None:
    import soundfile

    folder.mkdir(parents=True, exist_ok=True)
    for name, audio in estimates.items():
        with atomic_path(folder / f"{name}.wav") as tmp:
            soundfile.write(str(tmp), audio, int(rate), subtype="FLOAT")


def _load(settings: MusdbSettings) -> nn.Module:
    if isinstance(settings.model, nn.Module):
        return settings.model.to(settings.device).eval()
    from unmix.pretrained import load_separator

    return load_separator(
        settings.model,
        targets=settings.targets,
        niter=settings.niter,
        residual=settings.residual,
        wiener_win_len=settings.wiener_win_len,
        device=settings.device,
        **settings.extra,
    )


def _database(settings: MusdbSettings) -> Any:
    musdb = require("musdb", "evaluation", "unmix.evaluate.evaluate_musdb")
    root = Path(settings.root).expanduser()
    if not (root / settings.subset).is_dir():
        raise UnmixError(
            f"no '{settings.subset}' folder in the MUSDB root {str(root)!r}; pass the folder that holds train/ and "
            "test/ (add --is-wav for decoded WAV folders)"
        )
    return musdb.DB(root=str(root), is_wav=settings.is_wav, subsets=settings.subset, split=settings.split)


_WORKER: dict[str, Any] = {}


def _worker_init(settings: MusdbSettings, threads: int) -> None:
    torch.set_num_threads(threads)
    _WORKER["settings"] = settings
    _WORKER["separator"] = _load(settings)
    _WORKER["db"] = _database(settings)


def _worker_track(index: int) -> TrackScores:
    return _score(_WORKER["separator"], _WORKER["db"].tracks[index], _WORKER["settings"])


def _score(separator: nn.Module, track: Any, settings: MusdbSettings) -> TrackScores:
    estimates = separate_track(separator, track.audio, track.rate, settings.aggregate_dict, settings.chunk_seconds)
    if settings.estimates_dir is not None:
        _save_estimates(estimates, Path(settings.estimates_dir) / track.subset / track.name, track.rate)
    references = {name: target.audio for name, target in track.targets.items() if name in estimates}
    scores = evaluate_track(
        references,
        estimates,
        track.rate,
        name=track.name,
        subset=track.subset,
        win=settings.win,
        hop=settings.hop,
        device=settings.device,
    )
    if settings.eval_dir is not None:
        save_track_scores(scores, settings.eval_dir)
    return scores


def evaluate_musdb(settings: MusdbSettings, progress: bool = True) -> list[TrackScores]:
    """Separate and score the selected tracks; write JSON and CSV files to ``settings.eval_dir``.

    Args:
        settings: what to evaluate.
        progress: show a tqdm bar.

    Returns:
        The scores of every track, in the dataset's order.

    Raises:
        UnmixError: unreadable root, unknown track names, or errors from loading the model.
        MissingDependencyError: ``musdb`` is not installed.
    """
    from tqdm import tqdm

    db = _database(settings)
    names = [t.name for t in db.tracks]
    if settings.tracks:
        unknown = [n for n in settings.tracks if n not in names]
        if unknown:
            raise UnmixError(f"unknown track(s) {unknown} in subset '{settings.subset}'; available: {names}")
    wanted = [i for i, n in enumerate(names) if not settings.tracks or n in settings.tracks]
    if not wanted:
        raise UnmixError(f"no tracks found in subset '{settings.subset}' of {str(settings.root)!r}")
    results: dict[int, TrackScores] = {}
    if settings.resume and settings.eval_dir is not None:
        for i in wanted:
            path = Path(settings.eval_dir) / db.tracks[i].subset / f"{names[i]}.json"
            if path.is_file():
                results[i] = load_track_scores(path)
    todo = [i for i in wanted if i not in results]
    bar = tqdm(total=len(wanted), initial=len(results), unit="track", disable=not progress, desc="evaluate")
    try:
        if settings.cores > 1 and len(todo) > 1:
            threads = max(1, (os.cpu_count() or 1) // settings.cores)
            context = multiprocessing.get_context("spawn")
            with concurrent.futures.ProcessPoolExecutor(
                settings.cores, mp_context=context, initializer=_worker_init, initargs=(settings, threads)
            ) as pool:
                futures = {pool.submit(_worker_track, i): i for i in todo}
                for future in concurrent.futures.as_completed(futures):
                    results[futures[future]] = future.result()
                    bar.update()
        elif todo:
            separator = _load(settings)
            for i in todo:
                bar.set_postfix_str(names[i][:30])
                results[i] = _score(separator, db.tracks[i], settings)
                bar.update()
    finally:
        bar.close()
    scores = [results[i] for i in wanted]
    if settings.eval_dir is not None:
        folder = Path(settings.eval_dir)
        folder.mkdir(parents=True, exist_ok=True)
        tracks_to_csv(scores, folder / "tracks.csv")
        scores_to_csv(aggregate(scores), folder / "scores.csv", nb_tracks=len(scores))
    return scores

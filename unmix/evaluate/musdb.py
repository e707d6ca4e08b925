"""MUSDB18 evaluation with museval's protocol: per-track scores, museval-format JSON, SiSEC aggregation, CSV, table.

Protocol (``museval.eval_mus_track``, museval 0.4.1): the estimated targets are scored together as one BSSEval v4
problem (1 s windows and hops, 512-tap global filters); when both ``vocals`` and ``accompaniment`` are estimated,
``accompaniment`` is left out of that problem and the pair (vocals, accompaniment) is scored on its own, which gives
both their reported scores. Estimates are zero-padded or cut to the references' length. Frame values are rounded to
5 decimals and ``inf`` becomes NaN, as in museval's JSON. The community number of a target is the median over frames
(NaN frames skipped), then the median over tracks (SiSEC18).

The per-track JSON files have museval's layout and schema (``<dir>/<subset>/<track>.json``), so museval's own tools
(``museval.EvalStore.add_eval_dir``, ``MethodStore``) read them, and :func:`load_scores` reads museval's.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from unmix.evaluate.bsseval import EvaluationError, bss_eval
from unmix.utils.atomic import atomic_write_text

logger = logging.getLogger(__name__)

__all__ = [
    "METRICS",
    "TrackScores",
    "aggregate",
    "evaluate_track",
    "format_table",
    "load_scores",
    "load_track_scores",
    "save_track_scores",
    "scores_to_csv",
    "tracks_to_csv",
]

#: Metric names in museval's JSON order.
METRICS = ("SDR", "SIR", "SAR", "ISR")
#: Version of museval whose format and numbers the JSON files reproduce.
MUSEVAL_VERSION = "0.4.1"


def _quantize(value: float) -> float:
    """museval's ``TrackStore._q``: 5 decimals, ``inf`` -> NaN."""
    value = float(value)
    if math.isinf(value):
        return math.nan
    return value if math.isnan(value) else round(value, 5)


@dataclass
class TrackScores:
    """BSSEval scores of one track: ``targets[target][metric]`` is the list of frame values.

    Attributes:
        name: track name.
        targets: ``{target: {metric: [frame values]}}`` (quantised as in museval's JSON).
        win: window length in seconds.
        hop: hop length in seconds.
        subset: MUSDB subset (``train`` or ``test``), used for the JSON path.
    """

    name: str
    targets: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    win: float = 1.0
    hop: float = 1.0
    subset: str = "test"

    def add_target(self, target: str, values: Mapping[str, Sequence[float]]) -> None:
        """Add the frame values ``{metric: values}`` of ``target`` (quantised)."""
        self.targets[target] = {metric: [_quantize(v) for v in values[metric]] for metric in METRICS}

    def medians(self) -> dict[str, dict[str, float]]:
        """``{target: {metric: median over frames}}``, NaN frames skipped (NaN if all are)."""
        return {t: {m: _nanmedian(v) for m, v in values.items()} for t, values in self.targets.items()}

    def to_json(self) -> dict[str, Any]:
        """The museval JSON document (``musdb.schema.json``)."""
        targets = []
        for target, values in self.targets.items():
            frames = [
                {
                    "time": i * self.hop,
                    "duration": self.win,
                    "metrics": {metric: values[metric][i] for metric in METRICS},
                }
                for i in range(len(values["SDR"]))
            ]
            targets.append({"name": target, "frames": frames})
        return {"targets": targets, "museval_version": MUSEVAL_VERSION, "generator": "unmix.evaluate"}

    @classmethod
    def from_json(cls, name: str, document: Mapping[str, Any], subset: str = "test") -> TrackScores:
        """Read a museval JSON document (as written by museval or :meth:`to_json`)."""
        scores = cls(name=name, subset=subset)
        for target in document.get("targets", []):
            frames = target.get("frames", [])
            if frames:
                scores.win = float(frames[0].get("duration", scores.win))
                if len(frames) > 1:
                    scores.hop = float(frames[1]["time"]) - float(frames[0]["time"])
            values = {
                m: [float("nan") if f["metrics"].get(m) is None else f["metrics"][m] for f in frames] for m in METRICS
            }
            scores.targets[target["name"]] = values
        return scores

    def __str__(self) -> str:
        lines = [self.name]
        for target, values in self.medians().items():
            lines.append(
                target.ljust(16) + "==> " + "  ".join(f"{m}:{values[m]:>8.3f}" for m in ("SDR", "SIR", "ISR", "SAR"))
            )
        return "\n".join(lines)


def _nanmedian(values: Iterable[float]) -> float:
    array = np.asarray(list(values), dtype=np.float64)
    array = array[~np.isnan(array)]
    return float(np.median(array)) if array.size else math.nan


def _fit(estimate: np.ndarray, length: int) -> np.ndarray:
    """Zero-pad or cut (nb_timesteps, nb_channels) to ``length`` samples (museval's ``pad_or_truncate``)."""
    if estimate.shape[0] >= length:
        return estimate[:length]
    return np.pad(estimate, [(0, length - estimate.shape[0]), (0, 0)])


def evaluate_track(
    references: Mapping[str, np.ndarray],
    estimates: Mapping[str, np.ndarray],
    rate: float,
    name: str = "",
    subset: str = "test",
    win: float = 1.0,
    hop: float = 1.0,
    device: Any = None,
) -> TrackScores:
    """Score the estimates of one track with museval's protocol (``museval.eval_mus_track``).

    Args:
        references: ``{target: (nb_timesteps, nb_channels)}`` true target images, in the dataset's target order
            (MUSDB: vocals, drums, bass, other, accompaniment, linear_mixture); extra entries are ignored.
        estimates: ``{target: (nb_timesteps', nb_channels)}``; targets absent from ``references`` are ignored.
        rate: sample rate in Hz.
        name: track name.
        subset: MUSDB subset, kept for the JSON path.
        win: window in seconds.
        hop: hop in seconds.
        device: torch device for :func:`~unmix.evaluate.bss_eval`.

    Returns:
        The frame scores of every evaluated target (empty, with a warning, if fewer than two targets can be scored).
    """
    names = [t for t in references if t in estimates]
    scores = TrackScores(name=name, win=win, hop=hop, subset=subset)
    pair = "vocals" in names and "accompaniment" in names
    main = [t for t in names if not (pair and t == "accompaniment")]

    def run(targets: list[str]) -> list[dict[str, Any]]:
        ref = np.stack([np.asarray(references[t], dtype=np.float64) for t in targets])
        length = ref.shape[1]
        est = np.stack([_fit(np.asarray(estimates[t], dtype=np.float64), length) for t in targets])
        if est.shape != ref.shape:
            raise EvaluationError(
                f"track {name!r}: estimates {est.shape} do not match references {ref.shape} "
                "(targets, samples, channels); estimates must have the references' number of channels"
            )
        sdr, isr, sir, sar = bss_eval(ref, est, window=int(win * rate), hop=int(hop * rate), device=device)
        return [{"SDR": sdr[k], "SIR": sir[k], "ISR": isr[k], "SAR": sar[k]} for k in range(len(targets))]

    if len(main) >= 2:
        for target, values in zip(main, run(main)):
            if not (pair and target == "vocals"):
                scores.add_target(target, values)
    elif not pair:
        logger.warning("track %r: at least two estimated targets are needed for BSSEval; got %s", name, names)
    if pair:
        for target, values in zip(["vocals", "accompaniment"], run(["vocals", "accompaniment"])):
            scores.add_target(target, values)
    return scores


def save_track_scores(scores: TrackScores, folder: str | Path) -> Path:
    """Write ``<folder>/<subset>/<track>.json`` (museval layout, NaN written as ``NaN``), atomically."""
    path = Path(folder) / scores.subset / f"{scores.name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(scores.to_json(), indent=2, allow_nan=True) + "\n")
    return path


def load_track_scores(path: str | Path, subset: str | None = None) -> TrackScores:
    """Read one museval-format JSON file (the track name is the file stem, the subset its parent folder)."""
    path = Path(path)
    with open(path, encoding="utf-8") as handle:
        document = json.load(handle)
    return TrackScores.from_json(path.stem, document, subset=subset or path.parent.name)


def load_scores(folder: str | Path, subset: str | None = "test") -> list[TrackScores]:
    """Read every ``<folder>/<subset>/*.json`` (all subsets if ``subset`` is None), sorted by track name."""
    root = Path(folder)
    pattern = "*/*.json" if subset is None else f"{subset}/*.json"
    return [load_track_scores(p) for p in sorted(root.glob(pattern))]


def aggregate(tracks: Iterable[TrackScores], tracks_agg: str = "median") -> dict[str, dict[str, float]]:
    """The SiSEC18 numbers: ``{target: {metric: median over tracks of the median over frames}}``.

    Args:
        tracks: scores of the tracks.
        tracks_agg: ``"median"`` (SiSEC18) or ``"mean"`` over tracks; NaN track values are skipped.
    """
    if tracks_agg not in ("median", "mean"):
        raise EvaluationError(f"tracks_agg must be 'median' or 'mean', got {tracks_agg!r}")
    per_target: dict[str, dict[str, list[float]]] = {}
    for track in tracks:
        for target, values in track.medians().items():
            for metric, value in values.items():
                per_target.setdefault(target, {m: [] for m in METRICS})[metric].append(value)
    out: dict[str, dict[str, float]] = {}
    for target, metrics in per_target.items():
        out[target] = {}
        for metric, values in metrics.items():
            finite = [v for v in values if not math.isnan(v)]
            out[target][metric] = (
                float(np.median(finite) if tracks_agg == "median" else np.mean(finite)) if finite else math.nan
            )
    return out


def _csv(rows: list[list[Any]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def scores_to_csv(
    aggregated: Mapping[str, Mapping[str, float]], path: str | Path | None = None, nb_tracks: int | None = None
) -> str:
    """CSV of the aggregated scores: ``target,SDR,SIR,ISR,SAR[,tracks]``; written atomically to ``path`` if given."""
    header = ["target", "SDR", "SIR", "ISR", "SAR"] + (["tracks"] if nb_tracks is not None else [])
    rows = [header] + [
        [t] + [f"{v[m]:.5f}" for m in ("SDR", "SIR", "ISR", "SAR")] + ([nb_tracks] if nb_tracks is not None else [])
        for t, v in aggregated.items()
    ]
    text = _csv(rows)
    if path is not None:
        atomic_write_text(path, text)
    return text


def tracks_to_csv(tracks: Iterable[TrackScores], path: str | Path | None = None) -> str:
    """CSV of the per-track frame medians: ``track,target,SDR,SIR,ISR,SAR``; written atomically if ``path``."""
    rows: list[list[Any]] = [["track", "target", "SDR", "SIR", "ISR", "SAR"]]
    for track in tracks:
        for target, values in track.medians().items():
            rows.append([track.name, target] + [f"{values[m]:.5f}" for m in ("SDR", "SIR", "ISR", "SAR")])
    text = _csv(rows)
    if path is not None:
        atomic_write_text(path, text)
    return text


def format_table(aggregated: Mapping[str, Mapping[str, float]], nb_tracks: int | None = None, title: str = "") -> str:
    """A fixed-width table of the aggregated scores (dB), one row per target, plus the mean SDR over targets."""
    head = title or "BSSEval v4 (median over frames, median over tracks)"
    if nb_tracks is not None:
        head += f", {nb_tracks} track{'s' if nb_tracks != 1 else ''}"
    lines = [head, f"{'target':<16}{'SDR':>9}{'SIR':>9}{'ISR':>9}{'SAR':>9}"]
    for target, values in aggregated.items():
        lines.append(f"{target:<16}" + "".join(f"{values[m]:>9.3f}" for m in ("SDR", "SIR", "ISR", "SAR")))
    sdrs = [v["SDR"] for v in aggregated.values() if not math.isnan(v["SDR"])]
    if len(sdrs) > 1:
        lines.append(f"{'mean SDR':<16}{float(np.mean(sdrs)):>9.3f}")
    return "\n".join(lines)

"""Evaluation: museval-exact BSSEval v4, SI-SDR and global SDR (metrics and losses), MUSDB18 scoring.

- :func:`bss_eval`: ``museval.metrics.bss_eval`` in PyTorch (same arguments, same numbers, CPU or GPU, much faster).
- :func:`sdr`, :func:`si_sdr`, :func:`sdr_loss`, :func:`si_sdr_loss`: differentiable plain ("global", MDX) and
  scale-invariant signal-to-distortion ratios.
- :func:`evaluate_track`, :func:`aggregate`, :class:`TrackScores` and the file helpers: museval's MUSDB protocol,
  JSON files, SiSEC aggregation (median over frames, then over tracks), CSV and table.
- :func:`evaluate_musdb`: separate a MUSDB18 root with a model and score it (``unmix evaluate``).
"""

from unmix.evaluate.bsseval import EvaluationError, bss_eval, framing
from unmix.evaluate.metrics import sdr, sdr_loss, si_sdr, si_sdr_loss
from unmix.evaluate.musdb import (
    TrackScores,
    aggregate,
    evaluate_track,
    format_table,
    load_scores,
    load_track_scores,
    save_track_scores,
    scores_to_csv,
    tracks_to_csv,
)
from unmix.evaluate.runner import MusdbSettings, evaluate_musdb, separate_track

__all__ = [
    "EvaluationError",
    "MusdbSettings",
    "TrackScores",
    "aggregate",
    "bss_eval",
    "evaluate_musdb",
    "evaluate_track",
    "format_table",
    "framing",
    "load_scores",
    "load_track_scores",
    "save_track_scores",
    "scores_to_csv",
    "sdr",
    "sdr_loss",
    "separate_track",
    "si_sdr",
    "si_sdr_loss",
    "tracks_to_csv",
]

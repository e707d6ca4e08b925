"""museval's MUSDB protocol, JSON format and aggregation, checked against museval itself on small fake tracks."""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from collections import OrderedDict
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from unmix.evaluate.musdb import (
    TrackScores,
    aggregate,
    evaluate_track,
    format_table,
    load_scores,
    save_track_scores,
    scores_to_csv,
    tracks_to_csv,
)

museval = pytest.importorskip("museval")
RATE = 4000  # 1 s windows of 4000 samples keep museval's 512-tap systems small


def _fake_track(name: str, seed: int, seconds: float = 3.0) -> tuple[SimpleNamespace, dict[str, np.ndarray]]:
    """A musdb-like track (mono stems, targets in musdb's order) and estimates of vocals, drums, bass, accompaniment."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    sources = {
        s: rng.standard_normal((n, 1)).cumsum(0) * 0.01 + 0.1 * rng.standard_normal((n, 1))
        for s in ("vocals", "drums", "bass", "other")
    }
    targets = OrderedDict((s, SimpleNamespace(audio=a)) for s, a in sources.items())
    targets["accompaniment"] = SimpleNamespace(audio=sources["drums"] + sources["bass"] + sources["other"])
    targets["linear_mixture"] = SimpleNamespace(audio=sum(sources.values()))
    track = SimpleNamespace(name=name, rate=RATE, subset="test", targets=targets)
    estimates = {t: targets[t].audio + 0.3 * rng.standard_normal((n, 1)) for t in ("vocals", "drums", "bass")}
    estimates["accompaniment"] = targets["accompaniment"].audio + 0.2
    return track, estimates


def _references(track: SimpleNamespace) -> dict[str, np.ndarray]:
    return {k: v.audio for k, v in track.targets.items()}


def _museval_document(track: SimpleNamespace, estimates: dict, folder: Path | None = None) -> dict:
    store = museval.eval_mus_track(track, estimates, output_dir=str(folder) if folder else None)
    return json.loads(store.json)


def test_protocol_and_values_match_museval(tmp_path: Path) -> None:
    track, estimates = _fake_track("Fake - One", seed=0)
    ours = evaluate_track(_references(track), estimates, RATE, name=track.name).to_json()
    theirs = _museval_document(track, estimates)
    assert [t["name"] for t in ours["targets"]] == [t["name"] for t in theirs["targets"]]
    assert [t["name"] for t in ours["targets"]] == ["drums", "bass", "vocals", "accompaniment"]
    for mine, ref in zip(ours["targets"], theirs["targets"]):
        assert len(mine["frames"]) == len(ref["frames"]) == 3
        for a, b in zip(mine["frames"], ref["frames"]):
            assert a["time"] == b["time"] and a["duration"] == b["duration"]
            for metric, value in b["metrics"].items():
                assert abs(a["metrics"][metric] - float(value)) <= 2e-5  # both rounded to 5 decimals


def test_json_follows_museval_schema_and_round_trips(tmp_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    track, estimates = _fake_track("Fake - Two", seed=1)
    scores = evaluate_track(_references(track), estimates, RATE, name=track.name)
    path = save_track_scores(scores, tmp_path)
    assert path == tmp_path / "test" / "Fake - Two.json"
    document = json.loads(path.read_text())
    schema = json.loads((Path(museval.__file__).parent / "musdb.schema.json").read_text())
    jsonschema.validate(document, schema)
    loaded = load_scores(tmp_path)
    assert [t.name for t in loaded] == ["Fake - Two"]
    assert loaded[0].targets == scores.targets


def test_aggregation_matches_museval_evalstore(tmp_path: Path) -> None:
    store = museval.EvalStore(frames_agg="median", tracks_agg="median")
    ours = []
    for seed, name in enumerate(("Fake - A", "Fake - B", "Fake - C")):
        track, estimates = _fake_track(name, seed=10 + seed)
        if seed == 1:  # a silent reference window: NaN frames are skipped by the median
            track.targets["drums"].audio[RATE : 2 * RATE] = 0.0
        store.add_track(museval.eval_mus_track(track, estimates, output_dir=str(tmp_path / "museval")))
        ours.append(evaluate_track(_references(track), estimates, RATE, name=name))
    expected = store.agg_frames_tracks_scores().unstack()
    result = aggregate(ours)
    from_files = aggregate(load_scores(tmp_path / "museval"))  # museval's own JSON files read back
    for target, metrics in result.items():
        for metric, value in metrics.items():
            assert abs(value - expected[metric][target]) <= 2e-5
            assert abs(from_files[target][metric] - expected[metric][target]) <= 1e-9
    assert math.isnan(
        aggregate([TrackScores("x", {"vocals": {m: [math.nan] for m in ("SDR", "SIR", "SAR", "ISR")}})])["vocals"][
            "SDR"
        ]
    )


def test_csv_and_table(tmp_path: Path) -> None:
    track, estimates = _fake_track("Fake - Three", seed=3)
    scores = [evaluate_track(_references(track), estimates, RATE, name=track.name)]
    summary = aggregate(scores)
    text = scores_to_csv(summary, tmp_path / "scores.csv", nb_tracks=1)
    assert (tmp_path / "scores.csv").read_text() == text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["target"] for r in rows] == list(summary)
    assert all(abs(float(r["SDR"]) - summary[r["target"]]["SDR"]) < 1e-5 and r["tracks"] == "1" for r in rows)
    per_track = list(csv.DictReader(io.StringIO(tracks_to_csv(scores, tmp_path / "tracks.csv"))))
    assert {r["track"] for r in per_track} == {"Fake - Three"} and len(per_track) == 4
    table = format_table(summary, nb_tracks=1)
    lines = table.splitlines()
    assert "1 track" in lines[0] and lines[1].split() == ["target", "SDR", "SIR", "ISR", "SAR"]
    assert lines[2].split()[0] == "drums" and float(lines[2].split()[1]) == pytest.approx(
        summary["drums"]["SDR"], abs=1e-3
    )
    assert lines[-1].startswith("mean SDR")


def test_estimates_are_padded_or_cut_to_the_reference_length() -> None:
    track, estimates = _fake_track("Fake - Five", seed=5)
    n = len(track.targets["vocals"].audio)
    changed = dict(estimates)
    changed["vocals"] = estimates["vocals"][: n - 300]
    changed["drums"] = np.concatenate([estimates["drums"], np.ones((200, 1))])
    padded = dict(estimates)
    padded["vocals"] = np.concatenate([estimates["vocals"][: n - 300], np.zeros((300, 1))])
    a = evaluate_track(_references(track), changed, RATE, name="a").targets
    b = evaluate_track(_references(track), padded, RATE, name="a").targets
    assert a == b


def test_one_target_is_not_enough(caplog: pytest.LogCaptureFixture) -> None:
    track, estimates = _fake_track("Fake - Four", seed=4)
    with caplog.at_level(logging.WARNING, logger="unmix"):
        scores = evaluate_track(_references(track), {"drums": estimates["drums"]}, RATE, name=track.name)
    assert scores.targets == {}
    assert "at least two" in caplog.text

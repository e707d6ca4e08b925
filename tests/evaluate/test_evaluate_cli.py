"""End to end: ``unmix evaluate`` / ``scripts/evaluate.py`` on a tiny MUSDB18-layout root with a random model folder."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from unmix.cli.main import main
from unmix.evaluate import bss_eval, runner

pytest.importorskip("musdb")
REPO = Path(__file__).resolve().parents[2]
TRACKS = ("Alpha - First Song", "Beta - Second Song")  # as created by the musdb_root fixture (conftest.py)
SOURCES = ("vocals", "drums", "bass", "other")


def _run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(["evaluate", *[str(a) for a in argv]])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture(scope="module")
def full_run(musdb_root: Path, model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One evaluation of both tracks with every target, estimates written (in-process, module-scoped)."""
    work = tmp_path_factory.mktemp("evaluate")
    rc = main(
        [
            "evaluate",
            "--root",
            str(musdb_root),
            "--is-wav",
            "--model",
            str(model_dir),
            "--evaldir",
            str(work / "eval"),
            "--outdir",
            str(work / "estimates"),
            "--device",
            "cpu",
            "--no-progress",
        ]
    )
    return {"rc": rc, "eval": work / "eval", "estimates": work / "estimates"}


def test_writes_museval_json_per_track_and_the_csvs(full_run: dict) -> None:
    assert full_run["rc"] == 0
    folder = full_run["eval"]
    assert sorted(p.name for p in (folder / "test").glob("*.json")) == sorted(f"{t}.json" for t in TRACKS)
    document = json.loads((folder / "test" / f"{TRACKS[0]}.json").read_text())
    assert [t["name"] for t in document["targets"]] == list(SOURCES)
    frames = document["targets"][0]["frames"]
    assert [f["time"] for f in frames] == [0.0, 1.0] and frames[0]["duration"] == 1.0  # 2.5 s: two full windows
    assert set(frames[0]["metrics"]) == {"SDR", "SIR", "SAR", "ISR"}
    rows = list(csv.DictReader((folder / "scores.csv").open()))
    assert [r["target"] for r in rows] == list(SOURCES) and all(r["tracks"] == "2" for r in rows)
    per_track = list(csv.DictReader((folder / "tracks.csv").open()))
    assert len(per_track) == len(TRACKS) * len(SOURCES)


def test_scores_are_bss_eval_of_the_written_estimates(full_run: dict, musdb_root: Path) -> None:
    import musdb

    tracks = {t.name: t for t in musdb.DB(root=str(musdb_root), is_wav=True, subsets="test").tracks}
    for track in TRACKS:
        refs = np.stack([tracks[track].targets[s].audio for s in SOURCES])  # musdb's decoding (16-bit) is the truth
        ests = np.stack([sf.read(str(full_run["estimates"] / "test" / track / f"{s}.wav"))[0] for s in SOURCES])
        assert ests.shape == refs.shape  # back at 44.1 kHz, the track's length and channels
        sdr, isr, sir, sar = bss_eval(refs, ests, window=44100, hop=44100)
        document = json.loads((full_run["eval"] / "test" / f"{track}.json").read_text())
        for j, target in enumerate(document["targets"]):
            for t, frame in enumerate(target["frames"]):
                for name, values in (("SDR", sdr), ("ISR", isr), ("SIR", sir), ("SAR", sar)):
                    assert abs(frame["metrics"][name] - values[j, t]) <= 5e-6


def test_table_is_printed(
    musdb_root: Path,
    model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    full_run: dict,
) -> None:
    # --resume: the JSON of the first track is reused (separating it would fail here), the second is computed
    resumed = tmp_path / "eval"
    (resumed / "test").mkdir(parents=True)
    source = full_run["eval"] / "test" / f"{TRACKS[0]}.json"
    (resumed / "test" / source.name).write_text(source.read_text())
    score = runner._score

    def only_second(separator, track, settings):
        assert track.name == TRACKS[1], "a resumed track was separated again"
        return score(separator, track, settings)

    monkeypatch.setattr(runner, "_score", only_second)
    rc, out, err = _run(
        capsys,
        "--root",
        musdb_root,
        "--is-wav",
        "--model",
        model_dir,
        "--evaldir",
        resumed,
        "--resume",
        "--no-progress",
    )
    assert rc == 0, err
    lines = out.splitlines()
    assert "2 tracks" in lines[0]
    assert [line.split()[0] for line in lines[2:6]] == list(SOURCES)
    assert (resumed / "scores.csv").read_text() == (full_run["eval"] / "scores.csv").read_text()


def test_track_selection_and_vocals_accompaniment_pair(
    musdb_root: Path, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, err = _run(
        capsys,
        "--root",
        musdb_root,
        "--is-wav",
        "--model",
        model_dir,
        "--evaldir",
        tmp_path,
        "--tracks",
        TRACKS[1],
        "--targets",
        "vocals",
        "--residual",
        "accompaniment",
        "--no-progress",
    )
    assert rc == 0, err
    assert [p.name for p in (tmp_path / "test").glob("*.json")] == [f"{TRACKS[1]}.json"]
    document = json.loads((tmp_path / "test" / f"{TRACKS[1]}.json").read_text())
    assert [t["name"] for t in document["targets"]] == ["vocals", "accompaniment"]
    assert "1 track" in out


def test_usage_errors(
    musdb_root: Path,
    model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MUSDB_PATH", raising=False)
    rc, _, err = _run(capsys, "--model", model_dir, "--evaldir", tmp_path)
    assert rc == 2 and "--root" in err
    rc, _, err = _run(
        capsys,
        "--root",
        musdb_root,
        "--is-wav",
        "--model",
        model_dir,
        "--tracks",
        "No - Such Song",
        "--evaldir",
        tmp_path,
        "--no-progress",
    )
    assert rc == 1 and "No - Such Song" in err and "Traceback" not in err
    rc, _, err = _run(capsys, "--root", tmp_path / "nowhere", "--model", model_dir, "--no-progress")
    assert rc == 1 and "test" in err
    rc, _, err = _run(capsys, "--root", musdb_root, "--split", "valid", "--model", model_dir)
    assert rc == 2 and "--subset train" in err


def test_script_and_worker_processes(musdb_root: Path, model_dir: Path, tmp_path: Path, full_run: dict) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "evaluate.py"),
            "--root",
            str(musdb_root),
            "--is-wav",
            "--model",
            str(model_dir),
            "--evaldir",
            str(tmp_path),
            "--cores",
            "2",
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "evaluate" in result.stderr and "2/2" in result.stderr  # the tqdm bar
    assert "mean SDR" in result.stdout
    for track in TRACKS:  # two worker processes give the same numbers as the in-process run
        assert (tmp_path / "test" / f"{track}.json").read_text() == (
            full_run["eval"] / "test" / f"{track}.json"
        ).read_text()

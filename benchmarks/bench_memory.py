"""Peak memory of the command line on long files: does it stay bounded as the track grows?

Creates (once, in --workdir) a umxhq-size model folder with random weights (4 targets, hidden 512, 2049 bins,
max_bin 1487) and stereo 44.1 kHz noise files of the requested lengths, then runs
``python -m unmix <file> --model <folder>`` in a fresh process per file and reports its peak RSS (``ru_maxrss`` of
the child) and wall time. Chunked streaming is the CLI's default; ``--chunk-seconds 0`` measures the whole-track path.

    python benchmarks/bench_memory.py --minutes 1 3 10 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from unmix import OpenUnmix  # noqa: E402

TARGETS = ("vocals", "drums", "bass", "other")


def make_model(folder: Path) -> None:
    if (folder / "separator.json").is_file():
        return
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    for target in TARGETS:
        model = OpenUnmix(nb_bins=2049, nb_channels=2, hidden_size=512, max_bin=1487)
        torch.save(model.state_dict(), folder / f"{target}.pth")
        args = {"nfft": 4096, "nhop": 1024, "nb_channels": 2, "hidden_size": 512, "sample_rate": 44100}
        (folder / f"{target}.json").write_text(json.dumps({"args": args}))
    settings = {"sample_rate": 44100, "nfft": 4096, "nhop": 1024, "nb_channels": 2, "targets": list(TARGETS)}
    (folder / "separator.json").write_text(json.dumps(settings))


def make_audio(path: Path, minutes: float) -> None:
    if path.is_file():
        return
    rng = np.random.default_rng(0)
    with sf.SoundFile(str(path), "w", 44100, 2, "PCM_16") as handle:
        for _ in range(int(np.ceil(minutes * 6))):  # 10-second blocks
            handle.write((rng.standard_normal((441000, 2)) * 0.1).astype(np.float32))


def run_cli(audio: Path, model: Path, out: Path, chunk: float, threads: int) -> tuple[float, float]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=str(REPO))
    argv = [sys.executable, "-m", "unmix", str(audio), "--model", str(model), "-o", str(out), "--force", "-q",
            "--chunk-seconds", str(chunk)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True)
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak <= before:
        raise RuntimeError("peak RSS of the child is not larger than an earlier child's; run one size per process")
    return wall, peak / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 10.0])
    parser.add_argument("--chunk-seconds", type=float, default=30.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=Path("bench-out") / "memory")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    model = args.workdir / "umxhq-random"
    make_model(model)
    print("| audio | chunk [s] | wall [s] | x real time | peak RSS [MiB] |\n|---|---|---|---|---|")
    for minutes in sorted(args.minutes):
        audio = args.workdir / f"noise-{minutes:g}min.wav"
        make_audio(audio, minutes)
        # ru_maxrss of children is a running maximum: measure each size in its own python process
        code = (
            "import sys; sys.path.insert(0, sys.argv[1]); from benchmarks.bench_memory import run_cli; "
            "from pathlib import Path; w, p = run_cli(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]), "
            "float(sys.argv[5]), int(sys.argv[6])); print(w, p)"
        )
        result = subprocess.run(
            [sys.executable, "-c", code, str(REPO), str(audio), str(model), str(args.workdir / "out"),
             str(args.chunk_seconds), str(args.threads)],
            capture_output=True, text=True, check=True,
        )
        wall, peak = map(float, result.stdout.split())
        print(f"| {minutes:g} min | {args.chunk_seconds:g} | {wall:.1f} | {minutes * 60 / wall:.1f} | {peak:.0f} |")


if __name__ == "__main__":
    main()

"""Benchmark: unmix's Spleeter U-Net separation vs Spleeter 2.4.2 (TensorFlow) on the same 60 s of audio.

Both separate the same stereo signal with the same checkpoint (default: the 2stems-layout reference checkpoint in
``<repo>/../shared/reference/spleeter``) at the same thread count; the median of ``--runs`` timed calls (after one
warm-up call) is reported for each, with the ratio. Spleeter runs in a separate interpreter (it needs Python < 3.12
and tensorflow 2.12.1), e.g. ``python3 -m venv /work/bench-spleeter && /work/bench-spleeter/bin/pip install
spleeter==2.4.2``; if that interpreter cannot import spleeter, the script says so and times unmix alone.

Note: Spleeter 2.4.2 rebuilds its predict graph and restores the checkpoint inside every ``separate`` call; that is
its real per-call cost and is included, as unmix's one-off conversion is excluded from its timed calls.

Usage: python benchmarks/bench_spleeter.py [--threads 1] [--runs 3] [--seconds 60] [--mwf]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
REFERENCE = (REPO / ".." / "shared" / "reference" / "spleeter").resolve()

SPLEETER_CHILD = r"""
import json, sys, time
import numpy as np
from spleeter.separator import Separator
args = json.loads(sys.argv[1])
waveform = np.load(args["waveform"])
separator = Separator(args["config"], MWF=args["mwf"], multiprocess=False)
separator.separate(waveform)  # warm-up: builds the estimator
times, cpu = [], []
for _ in range(args["runs"]):
    start, start_cpu = time.perf_counter(), time.process_time()
    outputs = separator.separate(waveform)
    times.append(time.perf_counter() - start)
    cpu.append(time.process_time() - start_cpu)
np.savez(args["outputs"], **outputs)
print("TIMES " + json.dumps([times, cpu]))
"""


def make_audio(seconds: float, rate: int = 44100) -> np.ndarray:
    """A deterministic stereo test signal: harmonic tones plus coloured noise, (nb_timesteps, 2) float32."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    tones = sum(np.sin(2 * np.pi * f * t + p) / (k + 1) for k, (f, p) in enumerate([(110, 0), (220, 1), (440, 2)]))
    noise = np.cumsum(rng.standard_normal((len(t), 2)), axis=0)
    noise -= np.convolve(noise[:, 0], np.ones(64) / 64, mode="same")[:, None]
    audio = 0.3 * tones[:, None] + 0.05 * noise / np.abs(noise).max()
    return audio.astype(np.float32)


def thread_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
        env[key] = str(threads)
    env["TF_NUM_INTEROP_THREADS"] = "1"
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return env


Timings = tuple[list[float], list[float]]  # wall-clock and process CPU seconds per run


def time_unmix(waveform: np.ndarray, config: Path, threads: int, runs: int, mwf: bool, cache: Path
               ) -> tuple[Timings, dict[str, np.ndarray]]:
    import torch

    sys.path.insert(0, str(REPO))
    from unmix.pretrained.spleeter import load_spleeter_separator

    torch.set_num_threads(threads)
    separator = load_spleeter_separator(config, MWF=mwf, cache_dir=cache)
    separator.separate(waveform)  # warm-up
    times, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        outputs = separator.separate(waveform)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return (times, cpu), outputs


def time_spleeter(python: str, waveform: np.ndarray, config: Path, threads: int, runs: int, mwf: bool,
                  work: Path) -> tuple[Timings, dict[str, np.ndarray]] | str:
    if not Path(python).exists():
        return f"Spleeter interpreter {python} not found"
    probe = subprocess.run([python, "-c", "import spleeter, tensorflow"], capture_output=True, text=True,
                           env=thread_env(threads))
    if probe.returncode != 0:
        return f"spleeter/tensorflow cannot be imported by {python}: {probe.stderr.strip().splitlines()[-1:]}"
    np.save(work / "waveform.npy", waveform)
    args = {"waveform": str(work / "waveform.npy"), "config": str(config), "mwf": mwf, "runs": runs,
            "outputs": str(work / "spleeter.npz")}
    env = thread_env(threads)
    env["MODEL_PATH"] = str(config.parent)  # Spleeter resolves a relative model_dir against MODEL_PATH
    result = subprocess.run([python, "-c", SPLEETER_CHILD, json.dumps(args)], capture_output=True, text=True,
                            env=env, cwd=work)
    lines = [line for line in result.stdout.splitlines() if line.startswith("TIMES ")]
    if result.returncode != 0 or not lines:
        return f"Spleeter run failed (exit {result.returncode}): {result.stderr.strip()[-500:]}"
    with np.load(work / "spleeter.npz") as data:
        outputs = {key: data[key] for key in data.files}
    return json.loads(lines[0][6:]), outputs


def report(label: str, timings: Timings, seconds: float) -> tuple[float, float]:
    """Print one line of results; return the median wall-clock and median process-CPU times."""
    wall, cpu = timings
    median, median_cpu = statistics.median(wall), statistics.median(cpu)
    print(f"{label} separate: median {median:.3f} s wall (min {min(wall):.3f}), {median_cpu:.3f} s CPU  "
          f"runs {[round(t, 3) for t in wall]}  ({seconds / median:.1f}x real time)")
    return median, median_cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=REFERENCE / "config.json")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--mwf", action="store_true")
    parser.add_argument("--spleeter-python", default="/work/bench-spleeter/bin/python")
    args = parser.parse_args()
    os.environ.update({k: v for k, v in thread_env(args.threads).items() if k.endswith("_THREADS")})

    waveform = make_audio(args.seconds)
    mode = "MWF" if args.mwf else "mask"
    print(f"audio {args.seconds:g} s stereo 44.1 kHz, {mode} path, {args.threads} thread(s), median of {args.runs}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        timings, ours = time_unmix(waveform, args.config, args.threads, args.runs, args.mwf, work)
        median_unmix = report("unmix   ", timings, args.seconds)
        spleeter = time_spleeter(args.spleeter_python, waveform, args.config, args.threads, args.runs, args.mwf,
                                 work)
    if isinstance(spleeter, str):
        print(f"Spleeter not measured: {spleeter}")
        return 0
    theirs_timings, theirs = spleeter
    median_spleeter = report("Spleeter", theirs_timings, args.seconds)
    print(f"speed-up unmix vs Spleeter: {median_spleeter[0] / median_unmix[0]:.2f}x wall-clock, "
          f"{median_spleeter[1] / median_unmix[1]:.2f}x CPU time (CPU time is robust to other load on the machine "
          "when both use one thread)")
    errors = {name: float(np.abs(ours[name] - theirs[name]).max()) for name in ours if name in theirs}
    print("max abs difference of the outputs: " + ", ".join(f"{k} {v:.2e}" for k, v in errors.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

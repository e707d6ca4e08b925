"""Benchmark exported separators (TorchScript, onnxruntime, optionally int8) against eager PyTorch on CPU.

Workload (issue 8): the same separator in every runtime, random weights of a released architecture (no download):

- ``--model umxhq`` (default): 4 targets (vocals, drums, bass, other), each ``OpenUnmix(nb_bins=2049, nb_channels=2,
  hidden_size=512, max_bin=1487)``, ``niter=1``, ``wiener_win_len=300``, 4096/1024 centred STFT;
- ``--model spleeter:2stems`` / ``spleeter:4stems``: Spleeter U-Nets with ratio masks (niter 0);

the SAME 60 s stereo 44.1 kHz random audio (``--duration``). The files are written by :func:`unmix.export.
export_separator` into ``--workdir`` (kept with ``--workdir DIR``; reused if present and ``--reuse``).

Every measured separation runs in a FRESH subprocess with ``torch.set_num_threads(n)`` / onnxruntime
``intra_op_num_threads=n`` and ``OMP_NUM_THREADS=n``: the process loads the model, runs ``--warmup`` untimed
separations of a 10 s excerpt (TorchScript's profiling executor optimises its graph on the first calls), then times one
separation of the whole input; peak RSS (``ru_maxrss``) is that process's. Runs are interleaved (round r: for each
thread count: eager, torchscript, onnx, ...). The report gives per runtime and thread count the median wall time,
min-max, the real-time factor, the speed ratio eager / runtime (> 1: faster than eager), the load time, peak RSS,
the max abs difference from eager's output (first round) and, for int8 files, the SDR against eager float output.

Run::

    /work/venv/bin/python benchmarks/bench_export.py --runs 3 --threads 1 2 --markdown /tmp/export.md
    /work/venv/bin/python benchmarks/bench_export.py --runtimes eager onnx onnx-int8 --threads 2

Needs ``onnx``, ``onnxruntime`` and ``onnxscript`` (``pip install 'unmix[export]'``) for the ONNX runtimes.
Exit status: 0 on success, 1 when a float runtime differs from eager by more than ``--tolerance``, 2 when a run failed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULT_TAG = "BENCH_RESULT "
RUNTIMES = ("eager", "torchscript", "onnx", "torchscript-int8", "onnx-int8")
FILES = {"torchscript": "separator.pt", "onnx": "separator.onnx", "torchscript-int8": "separator-int8.pt",
         "onnx-int8": "separator-int8.onnx"}


def _load_separator(model: str):
    sys.path.insert(0, str(REPO))
    from unmix.pretrained import load_separator

    return load_separator(model, niter=1, wiener_win_len=300, pretrained=False).freeze()


def worker_prepare(args: argparse.Namespace) -> None:
    """Write the input audio and the exported files (in its own process: export memory is not measured)."""
    import numpy as np
    import torch

    from unmix.export import export_separator

    workdir = Path(args.workdir)
    torch.manual_seed(args.seed)
    separator = _load_separator(args.model)
    rate = int(separator.sample_rate)
    audio = np.random.default_rng(args.seed).uniform(-0.5, 0.5, (1, 2, int(args.duration * rate))).astype(np.float32)
    np.save(workdir / "audio.npy", audio)
    torch.save(separator.state_dict(), workdir / "weights.pt")
    info = {}
    for runtime in args.runtimes:
        if runtime == "eager" or (args.reuse and (workdir / FILES[runtime]).exists()):
            continue
        fmt, _, quantize = runtime.partition("-")
        started = time.perf_counter()
        try:
            result = export_separator(separator, workdir / FILES[runtime], fmt, quantize=quantize or None, check=False)
        except Exception as err:  # noqa: BLE001 - reported, the runtime is skipped
            info[runtime] = {"error": f"{type(err).__name__}: {err}"}
            continue
        info[runtime] = {"export_s": time.perf_counter() - started, "size_bytes": result.size_bytes}
    info["nb_parameters"] = sum(p.numel() for p in separator.parameters())
    print(RESULT_TAG + json.dumps(info), flush=True)


def worker_run(args: argparse.Namespace) -> None:
    """Load one runtime, warm up, time one separation of the whole input; print a JSON result line."""
    import numpy as np
    import torch

    threads = args.threads[0]
    torch.set_num_threads(threads)
    workdir = Path(args.workdir)
    audio = torch.from_numpy(np.load(workdir / "audio.npy"))
    started = time.perf_counter()
    if args.worker == "eager":
        torch.manual_seed(args.seed)
        separator = _load_separator(args.model)
        separator.load_state_dict(torch.load(workdir / "weights.pt", weights_only=True))

        def run(x: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode():
                return separator(x)
    else:
        sys.path.insert(0, str(REPO))
        from unmix.export import load_exported

        run = load_exported(workdir / FILES[args.worker], threads=threads)
    load_s = time.perf_counter() - started
    excerpt = audio[..., : min(audio.shape[-1], 10 * 44100)]
    for _ in range(args.warmup):
        run(excerpt)
    started = time.perf_counter()
    cpu_started = time.process_time()
    out = run(audio)
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    if args.save:
        np.save(workdir / f"out-{args.worker}.npy", out.numpy())
    result = {"runtime": args.worker, "threads": threads, "wall_s": wall, "cpu_s": cpu, "load_s": load_s,
              "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    print(RESULT_TAG + json.dumps(result), flush=True)


def _call(worker_args: list[str], threads: int, timeout: float) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=str(REPO))
    cmd = [sys.executable, str(Path(__file__).resolve()), *worker_args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    raise RuntimeError(f"worker failed ({shlex.join(cmd)}): {proc.stderr.strip()[-2000:]}")


def _compare(workdir: Path, runtime: str, targets: list[str]) -> dict:
    import numpy as np

    reference = np.load(workdir / "out-eager.npy").astype(np.float64)
    estimate = np.load(workdir / f"out-{runtime}.npy").astype(np.float64)
    error = reference - estimate
    sdr = 10 * np.log10((reference**2).sum(axis=(0, 2, 3)) / np.maximum((error**2).sum(axis=(0, 2, 3)), 1e-30))
    return {"max_abs": float(np.abs(error).max()), "sdr_db": dict(zip(targets, map(float, sdr), strict=True))}


def _machine() -> dict:
    import onnxruntime  # noqa: F401 - versions only
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__,
            "onnxruntime": sys.modules["onnxruntime"].__version__, "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(), "date": datetime.date.today().isoformat()}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="umxhq", help="registered architecture, random weights (default umxhq)")
    parser.add_argument("--runtimes", nargs="+", choices=RUNTIMES, default=["eager", "torchscript", "onnx"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--runs", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of audio (default 60)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed 10 s separations per process (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tolerance", type=float, default=1e-4)
    parser.add_argument("--workdir", help="keep the exported files and outputs here (default: a temporary folder)")
    parser.add_argument("--reuse", action="store_true", help="reuse exported files found in --workdir")
    parser.add_argument("--run-timeout", type=float, default=900.0)
    parser.add_argument("--markdown", help="write the report here")
    parser.add_argument("--json", help="write every run and the summary here")
    parser.add_argument("--worker", choices=("prepare",) + RUNTIMES, help=argparse.SUPPRESS)
    parser.add_argument("--save", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def run_benchmark(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        common = ["--workdir", str(workdir), "--model", args.model, "--seed", str(args.seed),
                  "--duration", str(args.duration)]
        prepared = _call(["--worker", "prepare", "--runtimes", *args.runtimes, *common]
                         + (["--reuse"] if args.reuse else []), max(args.threads), args.run_timeout)
        runtimes = [r for r in args.runtimes if "error" not in prepared.get(r, {})]
        runs, failed = [], False
        for round_index in range(args.runs):
            for threads in args.threads:
                for runtime in runtimes:
                    worker = ["--worker", runtime, "--threads", str(threads), "--warmup", str(args.warmup), *common]
                    if round_index == 0 and threads == args.threads[0]:
                        worker.append("--save")
                    try:
                        result = _call(worker, threads, args.run_timeout)
                    except (RuntimeError, subprocess.TimeoutExpired) as err:
                        sys.stderr.write(f"run failed: {err}\n")
                        failed = True
                        continue
                    result["round"] = round_index
                    runs.append(result)
                    sys.stderr.write(f"round {round_index} {runtime} x{threads}: {result['wall_s']:.2f} s\n")
        targets = ["vocals", "drums", "bass", "other"] if args.model.startswith("umx") else None
        if targets is None:
            sys.path.insert(0, str(REPO))
            targets = list(_load_separator(args.model).targets)
        diffs = {r: _compare(workdir, r, targets) for r in runtimes if r != "eager"
                 and (workdir / f"out-{r}.npy").exists()}
        report = _report(args, prepared, runs, diffs, runtimes)
        sys.stdout.write(report)
        if args.markdown:
            Path(args.markdown).write_text(report)
        if args.json:
            Path(args.json).write_text(json.dumps({"prepared": prepared, "runs": runs, "diffs": diffs,
                                                   "machine": _machine()}, indent=2))
    too_far = [r for r, d in diffs.items() if "int8" not in r and d["max_abs"] > args.tolerance]
    return 2 if failed else (1 if too_far else 0)


def _report(args: argparse.Namespace, prepared: dict, runs: list[dict], diffs: dict, runtimes: list[str]) -> str:
    lines = [f"# Export benchmark: {args.model}, {args.duration:g} s stereo 44.1 kHz, random weights", "",
             f"Machine: {json.dumps(_machine())}", "",
             f"Command: `{shlex.join([sys.executable, 'benchmarks/bench_export.py', *sys.argv[1:]])}`", "",
             f"Parameters: {prepared.get('nb_parameters', 0) / 1e6:.2f} M", "",
             "| runtime | file MB | export s | threads | median s | min-max s | RTF | eager / runtime | load s "
             "| peak RSS MiB | max abs diff vs eager | SDR vs eager (dB) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for threads in args.threads:
        eager = [r["wall_s"] for r in runs if r["runtime"] == "eager" and r["threads"] == threads]
        for runtime in runtimes:
            sel = [r for r in runs if r["runtime"] == runtime and r["threads"] == threads]
            if not sel:
                continue
            walls = [r["wall_s"] for r in sel]
            med = statistics.median(walls)
            info = prepared.get(runtime, {})
            diff = diffs.get(runtime)
            ratio = statistics.median(eager) / med if eager else float("nan")
            max_abs = f"{diff['max_abs']:.2e}" if diff else "-"
            sdr = f"{min(diff['sdr_db'].values()):.1f} (min over targets)" if diff and "int8" in runtime else "-"
            lines.append(
                f"| {runtime} | {info.get('size_bytes', 0) / 1e6:.1f} | {info.get('export_s', 0):.1f} | {threads} "
                f"| {med:.2f} | {min(walls):.2f}-{max(walls):.2f} | {args.duration / med:.1f} | {ratio:.2f} "
                f"| {statistics.median(r['load_s'] for r in sel):.2f} | {max(r['peak_rss_mib'] for r in sel):.0f} "
                f"| {max_abs} | {sdr} |"
            )
    lines += ["", f"{args.runs} rounds, warm-up {args.warmup} x 10 s per process; eager = "
              "`Separator.forward` under `torch.inference_mode()`.", ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker == "prepare":
        worker_prepare(args)
        return 0
    if args.worker:
        worker_run(args)
        return 0
    return run_benchmark(args)


if __name__ == "__main__":
    sys.exit(main())

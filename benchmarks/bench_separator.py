"""Benchmark unmix.Separator against upstream openunmix 1.3.0 on identical weights and audio.

Workload (issue 7): 4 targets (vocals, drums, bass, other), each ``OpenUnmix(nb_bins=2049, nb_channels=2,
hidden_size=512, max_bin=1487)`` (umxhq size) with the SAME random state dict loaded into ``openunmix.model.OpenUnmix``
and ``unmix.OpenUnmix`` (fixed seed; BatchNorm running statistics and input/output scalers randomised too); the SAME
60 s stereo 44.1 kHz random audio; ``Separator(models, niter=1, wiener_win_len=300, sample_rate=44100, n_fft=4096,
n_hop=1024, nb_channels=2)``; ``freeze()`` + ``torch.inference_mode()``.

Every measured separation runs in a FRESH subprocess (so peak RSS, ``ru_maxrss``, is per run) with
``torch.set_num_threads(n)`` and ``OMP_NUM_THREADS=n``; runs are interleaved (round r: for each thread count:
upstream, unmix); the report gives medians, the ratio upstream/unmix per thread count, the setup time (imports, model
build) and process wall time separately, and the max abs difference between the two outputs (must be <= 1e-4).

Set-up (once; see benchmarks/setup_bench_env.sh, which runs exactly this)::

    python3 -m venv /work/bench-venv
    /work/bench-venv/bin/pip install torch==2.13.0 numpy
    /work/bench-venv/bin/pip install --no-deps openunmix==1.3.0   # NOT torchaudio: a stub replaces it
    /work/bench-venv/bin/pip install --no-deps -e /work/main        # optional: the script puts the repo on sys.path

Upstream imports torchaudio at module level but uses it only for file I/O; the benchmark inserts a clearly marked
STUB module as ``sys.modules["torchaudio"]`` before importing openunmix (benchmarks/_upstream.py).

Run::

    /work/bench-venv/bin/python benchmarks/bench_separator.py --runs 5 --threads 1 2 \\
        --markdown /tmp/bench.md --json /tmp/bench.json
    /work/bench-venv/bin/python benchmarks/bench_separator.py --impl unmix --chunk-seconds 30   # unmix alone

The ``unmix`` package is copied once at the start (``--no-snapshot`` to import the live tree) so that every run uses
the same code even while the working tree is being edited. ``--chunk-seconds S`` runs unmix's chunked mode, in
whichever form this version offers (``Separator(chunk_seconds=S)`` or ``Separator.separate_long(audio,
chunk_seconds=S)``, found by inspection at run time); upstream always separates the whole track.

Exit status: 0 on success, 1 when the (whole-track) outputs differ by more than ``--tolerance``, 2 when a run failed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULT_TAG = "BENCH_RESULT "
IMPLS = ("upstream", "unmix")


# ---------------------------------------------------------------------------------------------------- subprocesses
def _emit(payload: dict) -> None:
    print(RESULT_TAG + json.dumps(payload), flush=True)


def _vmrss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _unmix_source_hash() -> str:
    """Short hash of every ``unmix/**/*.py`` file imported by this process (detects edits between runs)."""
    import hashlib

    import unmix

    digest = hashlib.sha256()
    for path in sorted(Path(unmix.__file__).parent.rglob("*.py")):
        digest.update(str(path.relative_to(Path(unmix.__file__).parent)).encode() + path.read_bytes())
    return digest.hexdigest()[:12]


def worker_probe() -> None:
    """Report versions and what can be imported (run under the benchmark interpreter)."""
    import torch
    from _upstream import upstream_version

    info: dict = {"torch": torch.__version__, "python": platform.python_version(), "cuda": torch.cuda.is_available()}
    try:
        info["upstream"] = upstream_version()
        info["torchaudio"] = getattr(sys.modules.get("torchaudio"), "__version__", "?")
    except Exception as exc:  # noqa: BLE001  (any import-time failure: report it, the driver decides)
        info["upstream_error"] = f"{type(exc).__name__}: {exc}"
    try:
        from _upstream import chunk_support

        import unmix

        info["unmix"] = getattr(unmix, "__version__", "?")
        info["unmix_file"] = unmix.__file__
        info["unmix_src"] = _unmix_source_hash()
        info["unmix_chunk"] = chunk_support(unmix.Separator)
    except Exception as exc:  # noqa: BLE001  (same)
        info["unmix_error"] = f"{type(exc).__name__}: {exc}"
    _emit(info)


def worker_prepare(directory: str, duration: float, seed: int) -> None:
    from _upstream import make_workload

    _emit(make_workload(Path(directory), duration, seed))


def worker_run(args: argparse.Namespace) -> None:
    """One measured separation: build, separate once (after ``--warmup`` untimed ones), report, optionally save."""
    t0 = time.perf_counter()
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from _upstream import build_separator

    t_import = time.perf_counter() - t0
    device = torch.device(args.device)
    separator, separate, info = build_separator(args.impl, args.weights, args.chunk_seconds, args.context_seconds)
    separator.to(device)
    audio = torch.from_numpy(np.load(args.audio)).to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    t_build = time.perf_counter() - t0 - t_import
    if args.impl == "unmix":
        info["unmix_src"] = _unmix_source_hash()
    rss_before = _vmrss_mib()
    with torch.inference_mode():
        for _ in range(args.warmup):
            separate(audio)
        sync()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        c_start, t_start = time.process_time(), time.perf_counter()
        estimates = separate(audio)
        sync()
        t_sep, c_sep = time.perf_counter() - t_start, time.process_time() - c_start
    result = {
        "impl": args.impl,
        "threads": args.threads,
        "torch_threads": torch.get_num_threads(),
        "sep_s": t_sep,
        "sep_cpu_s": c_sep,
        "import_s": t_import,
        "build_s": t_build,
        "rss_before_sep_mib": rss_before,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "shape": list(estimates.shape),
        "out_max_abs": float(estimates.abs().max()),
        "out_rms": float(estimates.double().pow(2).mean().sqrt()),
        **info,
    }
    if device.type == "cuda":
        result["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    if args.save_output:  # after the measurements, so saving never counts
        np.save(args.save_output, estimates.cpu().numpy())
    _emit(result)


def _call(worker_args: list[str], threads: int, timeout: float, src: Path = REPO) -> tuple[dict | None, float, str]:
    """Run this script as a worker in a fresh interpreter; returns (result or None, process wall s, error text).

    ``src`` is the folder holding the ``unmix`` package the worker imports (the repo, or the run's snapshot).
    """
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    env["PYTHONPATH"] = os.pathsep.join([str(src), str(HERE)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    cmd = [sys.executable, str(Path(__file__).resolve()), *worker_args]
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None, time.perf_counter() - start, f"timed out after {timeout:.0f} s"
    wall = time.perf_counter() - start
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG) :]), wall, ""
    return None, wall, f"exit {proc.returncode}: {(proc.stderr or proc.stdout)[-2000:]}"


# ---------------------------------------------------------------------------------------------------- reporting
def _machine(probe: dict) -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = next(ln for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal"))
        mem_gib = int(mem.split()[1]) / 2**20
    except (OSError, StopIteration):
        mem_gib = float("nan")
    git = ["git", "-C", str(REPO)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, check=False
    )
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "mem_gib": round(mem_gib, 1),
        "platform": platform.platform(),
        "python": probe.get("python"),
        "torch": probe.get("torch"),
        "openunmix": probe.get("upstream", "not importable"),
        "unmix": probe.get("unmix"),
        "unmix_commit": (commit.stdout.strip() or "?") + ("+dirty" if dirty.stdout.strip() else ""),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _median(records: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in records)


def _summary(runs: list[dict], threads: list[int], impls: list[str], duration: float) -> dict:
    out: dict = {}
    for n in threads:
        row: dict = {}
        for impl in impls:
            ok = [r for r in runs if r["threads"] == n and r["impl"] == impl and r.get("sep_s") is not None]
            if not ok:
                continue
            sep = [r["sep_s"] for r in ok]
            row[impl] = {
                "n": len(ok),
                "sep_median_s": _median(ok, "sep_s"),
                "sep_min_s": min(sep),
                "sep_max_s": max(sep),
                "sep_cpu_median_s": _median(ok, "sep_cpu_s"),
                "setup_median_s": statistics.median(r["import_s"] + r["build_s"] for r in ok),
                "process_median_s": _median(ok, "process_s"),
                "peak_rss_median_mib": _median(ok, "peak_rss_mib"),
                "rss_before_sep_median_mib": _median(ok, "rss_before_sep_mib"),
                "realtime_factor": duration / _median(ok, "sep_s"),
                "sep_all_s": sep,
            }
        if "upstream" in row and "unmix" in row:
            up, um = row["upstream"], row["unmix"]
            pairs = [
                (a["sep_s"], b["sep_s"])
                for a in runs
                for b in runs
                if a["threads"] == b["threads"] == n
                and a["round"] == b["round"]
                and a["impl"] == "upstream"
                and b["impl"] == "unmix"
                and a.get("sep_s")
                and b.get("sep_s")
            ]
            row["ratio_time"] = up["sep_median_s"] / um["sep_median_s"]
            row["ratio_time_paired_median"] = statistics.median(a / b for a, b in pairs) if pairs else None
            row["ratio_cpu"] = up["sep_cpu_median_s"] / um["sep_cpu_median_s"]
            row["ratio_peak_rss"] = up["peak_rss_median_mib"] / um["peak_rss_median_mib"]
        out[str(n)] = row
    return out


def _table(summary: dict, diffs: dict, impls: list[str]) -> list[str]:
    head = (
        "| threads | impl | runs | separation median [s] | min–max [s] | sep. CPU [s] | x real time | "
        "setup [s] | process [s] | RSS before sep. [MiB] | peak RSS [MiB] |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for n, row in summary.items():
        for impl in impls:
            if impl not in row:
                lines.append(f"| {n} | {impl} | 0 | failed | | | | | | | |")
                continue
            s = row[impl]
            lines.append(
                f"| {n} | {impl} | {s['n']} | {s['sep_median_s']:.2f} | {s['sep_min_s']:.2f}–{s['sep_max_s']:.2f} | "
                f"{s['sep_cpu_median_s']:.2f} | {s['realtime_factor']:.1f} | {s['setup_median_s']:.2f} | "
                f"{s['process_median_s']:.2f} | {s['rss_before_sep_median_mib']:.0f} | {s['peak_rss_median_mib']:.0f} |"
            )
        if "ratio_time" in row:
            paired = row["ratio_time_paired_median"]
            lines.append(
                f"| {n} | **upstream / unmix** | | **{row['ratio_time']:.2f}x** | paired median "
                + (f"{paired:.2f}x" if paired else "-")
                + f" | {row['ratio_cpu']:.2f}x | | | | | "
                f"**{row['ratio_peak_rss']:.2f}x** |"
            )
    return lines


# ---------------------------------------------------------------------------------------------------- driver
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--impl",
        choices=("both", "unmix", "upstream"),
        default="both",
        help="what to time; 'both' falls back to unmix alone (with a notice) if openunmix is not importable",
    )
    p.add_argument("--runs", type=int, default=5, help="measured runs per (impl, threads); the median is reported")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch intra-op thread counts")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of stereo 44.1 kHz audio")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights and audio")
    p.add_argument(
        "--chunk-seconds",
        type=float,
        default=None,
        help="run unmix chunked: Separator(chunk_seconds=S) or separate_long(audio, chunk_seconds=S), whichever "
        "this unmix has (upstream always runs whole-track)",
    )
    p.add_argument(
        "--context-seconds",
        type=float,
        default=None,
        help="with --chunk-seconds: context per chunk side, if unmix's chunked mode takes it",
    )
    p.add_argument("--warmup", type=int, default=0, help="untimed separations before the timed one, per process")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda); the same for both implementations")
    p.add_argument("--tolerance", type=float, default=1e-4, help="max abs difference allowed between the outputs")
    p.add_argument(
        "--max-minutes",
        type=float,
        default=20.0,
        help="start no new round when the next one would end past this budget (report what was done)",
    )
    p.add_argument("--run-timeout", type=float, default=900.0, help="seconds before one run is killed")
    p.add_argument("--markdown", type=Path, help="write a markdown report (machine, command, table) to this file")
    p.add_argument("--json", type=Path, help="write every run and the summary as JSON to this file")
    p.add_argument("--workdir", type=Path, help="where the weights/audio/outputs go (default: a temporary folder)")
    p.add_argument(
        "--no-snapshot",
        action="store_true",
        help="import unmix from the live repo in every run instead of a copy taken at the start "
        "(the copy keeps all runs on the same code while the tree is being edited)",
    )
    # internal: worker modes, run in fresh interpreters by the driver
    p.add_argument("--worker", choices=("probe", "prepare", "run"), help=argparse.SUPPRESS)
    for name in ("--weights", "--audio", "--save-output", "--dir"):
        p.add_argument(name, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker is None and (args.runs < 1 or any(n < 1 for n in args.threads) or args.duration <= 0):
        p.error(
            f"--runs and --threads must be >= 1 and --duration > 0, got {args.runs}, {args.threads}, {args.duration}"
        )
    return args


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_benchmark(args: argparse.Namespace) -> int:
    command = " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])
    tmp = tempfile.TemporaryDirectory(prefix="bench_sep_") if args.workdir is None else None
    work = Path(tmp.name) if tmp else args.workdir
    work.mkdir(parents=True, exist_ok=True)
    src = REPO
    if not args.no_snapshot:  # every run imports this copy, so edits to the live tree cannot mix code versions
        src = work / "src"
        shutil.rmtree(src, ignore_errors=True)
        shutil.copytree(REPO / "unmix", src / "unmix", ignore=shutil.ignore_patterns("__pycache__"))
    probe, _, err = _call(["--worker", "probe"], 1, 300, src)
    if probe is None or ("unmix_error" in probe and args.impl != "upstream"):
        _log(f"cannot probe/import unmix from {src}: {err or probe.get('unmix_error')}")
        return 2
    impls = list(IMPLS) if args.impl == "both" else [args.impl]
    if "upstream" in impls and "upstream_error" in probe:
        if args.impl == "upstream":
            _log(f"upstream openunmix is not importable: {probe['upstream_error']}")
            return 2
        _log(
            f"NOTE: upstream openunmix is not importable ({probe['upstream_error']}); timing unmix ALONE. "
            "Install it with benchmarks/setup_bench_env.sh to compare."
        )
        impls = ["unmix"]
    chunked = args.chunk_seconds is not None and bool(probe.get("unmix_chunk"))
    if args.chunk_seconds is not None and not chunked:
        _log(
            f"NOTE: unmix.Separator has no chunk_seconds option in this version; --chunk-seconds "
            f"{args.chunk_seconds} is IGNORED (whole-track separation)"
        )
    elif chunked:
        _log(
            f"unmix runs chunked (chunk_seconds={args.chunk_seconds:g} via {probe['unmix_chunk']}); "
            "upstream whole-track; the output difference then measures chunking too and does not decide the "
            "exit status"
        )
    _log(
        f"torch {probe['torch']}, openunmix {probe.get('upstream', '-')}, unmix {probe.get('unmix')} "
        f"(sources {probe.get('unmix_src')}, {'snapshot ' if src != REPO else ''}{probe.get('unmix_file')}); "
        f"impls {impls}, threads {args.threads}, runs {args.runs}, {args.duration:g} s"
    )
    files, wall, err = _call(
        ["--worker", "prepare", "--dir", str(work), "--duration", str(args.duration), "--seed", str(args.seed)], 1, 600
    )
    if files is None:
        _log(f"preparing the workload failed: {err}")
        return 2
    _log(f"workload ready in {wall:.1f} s: {files}")
    runs: list[dict] = []
    diffs: dict = {}
    sdrs: dict = {}
    start, last_round = time.perf_counter(), 0.0
    loads = [os.getloadavg()[0]]
    for rnd in range(args.runs):
        elapsed = time.perf_counter() - start
        if rnd > 0 and elapsed + last_round > args.max_minutes * 60:
            _log(f"stopping after {rnd} rounds: the next round would pass --max-minutes {args.max_minutes:g}")
            break
        round_start = time.perf_counter()
        for n in args.threads:
            for impl in impls:
                out_file = work / f"out_{impl}_{n}.npy" if rnd == 0 else None
                wargs = [
                    "--worker",
                    "run",
                    "--impl",
                    impl,
                    "--threads",
                    str(n),
                    "--weights",
                    files["weights"],
                    "--audio",
                    files["audio"],
                    "--warmup",
                    str(args.warmup),
                    "--device",
                    args.device,
                ]
                wargs += ["--chunk-seconds", str(args.chunk_seconds)] if args.chunk_seconds is not None else []
                wargs += ["--context-seconds", str(args.context_seconds)] if args.context_seconds is not None else []
                wargs += ["--save-output", str(out_file)] if out_file else []
                loads.append(os.getloadavg()[0])
                res, wall, err = _call(wargs, n, args.run_timeout, src)
                rec = {
                    "round": rnd,
                    "impl": impl,
                    "threads": n,
                    "process_s": wall,
                    "load1": loads[-1],
                    **(res or {"error": err}),
                }
                runs.append(rec)
                _log(
                    f"round {rnd + 1}/{args.runs} threads {n} {impl:8s} "
                    + (
                        f"sep {rec['sep_s']:.2f} s (cpu {rec['sep_cpu_s']:.2f}), "
                        f"setup {rec['import_s'] + rec['build_s']:.2f} s, "
                        f"process {wall:.2f} s, peak RSS {rec['peak_rss_mib']:.0f} MiB, load {loads[-1]:.1f}"
                        if res
                        else f"FAILED: {err}"
                    )
                )
            if rnd == 0 and len(impls) == 2:
                diffs[str(n)], sdrs[str(n)] = _compare(work / f"out_upstream_{n}.npy", work / f"out_unmix_{n}.npy")
                _log(f"threads {n}: max abs diff upstream vs unmix = {diffs[str(n)]}, SDR {sdrs[str(n)]} dB")
        last_round = time.perf_counter() - round_start
    summary = _summary(runs, args.threads, impls, args.duration)
    machine = _machine(probe)
    table = _table(summary, diffs, impls)
    bad_diff = [n for n, d in diffs.items() if not (isinstance(d, float) and d <= args.tolerance)]
    if chunked:  # a chunked unmix is not expected to match upstream's whole-track output to the tolerance
        bad_diff_fatal = []
    else:
        bad_diff_fatal = bad_diff
    failed = [r for r in runs if "error" in r]
    notes = [
        f"Workload: 4 targets umxhq size (nb_bins 2049, hidden 512, max_bin 1487), random weights seed {args.seed}, "
        f"{args.duration:g} s stereo 44.1 kHz, niter 1, wiener_win_len 300, device {args.device}, warmup {args.warmup}"
        + (
            f", unmix chunk_seconds {args.chunk_seconds:g}"
            + (f" context_seconds {args.context_seconds:g}" if args.context_seconds is not None else "")
            + (f" (via {probe['unmix_chunk']})" if chunked else " (NOT supported by this unmix: ignored)")
            if args.chunk_seconds is not None
            else ""
        )
        + ".",
        (
            "Separation = one Separator forward in a fresh process; setup = imports + model build; process = whole "
            "subprocess wall as seen by the driver; peak RSS = ru_maxrss of that process. Ratios: upstream / unmix "
            "(> 1 means unmix is faster / smaller); 'paired median' = median over rounds of the per-round ratio; "
            "the ratio in the CPU column compares separation CPU times (robust to waiting for a core at 1 thread)."
        ),
        "Max abs diff upstream vs unmix (first round): "
        + (
            ", ".join(
                f"{n} thread(s): {d:.2e} (SDR of unmix vs upstream {sdrs[n]:.1f} dB)"
                if isinstance(d, float)
                else f"{n}: {d}"
                for n, d in diffs.items()
            )
            or "n/a (one implementation)"
        )
        + f" (tolerance {args.tolerance:g}"
        + (f": EXCEEDED for {bad_diff}" if bad_diff else ": OK")
        + ").",
        "Output scale (first run): max |y| "
        + next((f"{r['out_max_abs']:.3g}, RMS {r['out_rms']:.3g}" for r in runs if r.get("out_rms")), "n/a")
        + ".",
        (
            f"1-min load average during the runs: min {min(loads):.1f}, max {max(loads):.1f} "
            f"(on {machine['usable_cpus']} usable CPUs; other jobs share the machine)."
        ),
    ]
    sources = sorted({r["unmix_src"] for r in runs if r.get("unmix_src")})
    if len(sources) > 1:
        notes.append(f"WARNING: the unmix sources changed during the benchmark (hashes {sources}); rerun.")
    print("\n".join(table + [""] + notes))
    if args.markdown:
        m = machine
        md = [
            f"## Separator benchmark: unmix vs openunmix {m['openunmix']} ({m['date']})",
            "",
            (
                f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs ({m['usable_cpus']} usable), "
                f"{m['mem_gib']} GiB RAM, {m['platform']}; Python {m['python']}, torch {m['torch']}; "
                f"unmix {m['unmix']} at {m['unmix_commit']} (sources hash {probe.get('unmix_src')}"
                f"{', snapshot' if not args.no_snapshot else ''})."
            ),
            "",
            "Command:",
            "",
            "```",
            command,
            "```",
            "",
            *table,
            "",
            *[f"- {x}" for x in notes],
            "",
        ]
        args.markdown.write_text("\n".join(md))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "command": command,
                    "machine": machine,
                    "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if v is not None},
                    "probe": probe,
                    "summary": summary,
                    "max_abs_diff": diffs,
                    "sdr_db": sdrs,
                    "notes": notes,
                    "runs": runs,
                },
                indent=1,
            )
        )
    if tmp:
        tmp.cleanup()
    return 2 if failed else (1 if bad_diff_fatal else 0)


def _compare(ref_path: Path, est_path: Path) -> tuple[float | str, float]:
    """Max abs difference and SDR (dB, all targets and channels pooled) of ``est`` against ``ref``."""
    import numpy as np

    if not (ref_path.exists() and est_path.exists()):
        return "missing output (a run failed)", float("nan")
    ref, est = np.load(ref_path).astype(np.float64), np.load(est_path)
    if ref.shape != est.shape:
        return f"shape mismatch {ref.shape} vs {est.shape}", float("nan")
    err = ref - est
    diff = float(np.max(np.abs(err)))
    sdr = float(10 * np.log10(np.sum(ref**2) / max(float(np.sum(err**2)), 1e-300)))
    ref_path.unlink(), est_path.unlink()
    return diff, sdr


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker == "probe":
        worker_probe()
    elif args.worker == "prepare":
        worker_prepare(args.dir, args.duration, args.seed)
    elif args.worker == "run":
        args.threads = args.threads[0]
        args.warmup = int(args.warmup)
        worker_run(args)
    else:
        return run_benchmark(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

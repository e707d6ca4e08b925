"""Benchmark ``unmix.evaluate.bss_eval`` against ``museval.metrics.bss_eval`` (museval 0.4.1) on identical inputs.

Both compute BSSEval v4 (``window=hop=rate``, ``filters_len=512``, global filters, images) on the same float32
arrays, (nb_sources, nb_samples, nb_channels). Runs are interleaved (round 1: museval then unmix, round 2: ...), in
one process whose BLAS/OpenMP/torch thread count is fixed before numpy and torch are imported. Reported per signal
kind: median wall and CPU time of each, the ratio of the medians (museval / unmix, > 1: unmix is faster), and the
agreement of the numbers (max |dB| difference over finite values, equality of the NaN pattern).

Signal kinds (``--signals``):

- ``noise``: i.i.d. Gaussian references; estimates = references through a 3-tap FIR, plus 10 % leakage of the next
  source and white noise (the peers report's "i.i.d. random example");
- ``music``: "music-like" references: coloured (1/f^0.8) noise, band-limited to 16 kHz like AAC-coded MUSDB stems,
  correlated channels, slow gating envelopes, one source silent for one second (NaN window), quantised to 16 bits;
  estimates built as for ``noise``. Its Gram matrices are ill-conditioned like real music, so unmix's fast
  conjugate-gradient solver gives way to the Levinson recursion: this is the slower, realistic path.

- ``--tracks DIR ...``: real stems, one kind per MUSDB18-HQ-layout track folder (``vocals/drums/bass/other.wav``; e.g.
  made by the shared ``synth_musdb.py``): the first ``--seconds`` of the four stems as references, estimates built
  from them as for ``noise`` (no silent window needed: the stems have their own rests).

Example::

    python benchmarks/bench_bsseval.py --runs 3 --threads 1 --markdown bench-out/bsseval.md --json bench-out/bsseval.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from functools import partial
from pathlib import Path


def _parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="signal duration (default 30)")
    parser.add_argument("--sources", type=int, default=4)
    parser.add_argument("--channels", type=int, default=2)
    parser.add_argument("--rate", type=int, default=44100)
    parser.add_argument("--runs", type=int, default=3, help="interleaved rounds per signal kind (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP/torch threads (default 1)")
    parser.add_argument("--signals", nargs="*", default=["noise", "music"], choices=["noise", "music"])
    parser.add_argument("--tracks", nargs="+", type=Path, default=[], help="MUSDB18-HQ-layout track folders (stems)")
    parser.add_argument("--device", default="cpu", help="torch device for unmix (default cpu)")
    parser.add_argument("--unmix-only", action="store_true", help="time unmix alone (no museval)")
    parser.add_argument(
        "--no-kernels", action="store_true", help="unmix without its compiled kernels (numpy code, as without a compiler)"
    )
    parser.add_argument("--max-minutes", type=float, default=15.0, help="no new round past this budget")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write every run and the summary here")
    parser.add_argument("--markdown", type=Path, help="write a Markdown report here")
    return parser.parse_args(argv)


ARGS = _parse()
for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_name] = str(ARGS.threads)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

from unmix.evaluate import _native, bss_eval

if ARGS.no_kernels:
    _native.ENABLED = False

torch.set_num_threads(ARGS.threads)
METRICS = ("SDR", "ISR", "SIR", "SAR")
STEMS = ("vocals", "drums", "bass", "other")


def _fir(x: np.ndarray, taps: tuple[float, ...]) -> np.ndarray:
    out = np.zeros_like(x)
    for k, tap in enumerate(taps):
        out[:, k:] += tap * x[:, : x.shape[1] - k]
    return out


def _stems(folder: Path, n: int) -> np.ndarray:
    """(4, n, 2) float64: the first ``n`` samples of a track folder's vocals, drums, bass and other stems."""
    import soundfile as sf

    stems = [sf.read(str(folder / f"{name}.wav"), dtype="float32", frames=n)[0] for name in STEMS]
    if any(x.shape != (n, 2) for x in stems):
        raise SystemExit(f"{folder}: every stem needs {n} stereo samples ({n / ARGS.rate:g} s)")
    return np.stack(stems).astype(np.float64)


def make_signals(kind: str, seconds: float, nsrc: int, nchan: int, rate: int, seed: int) -> tuple[np.ndarray, ...]:
    """Return (references, estimates), float32 (nb_sources, nb_samples, nb_channels)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    ref = _stems(Path(kind), n) if kind not in ("noise", "music") else rng.standard_normal((nsrc, n, nchan))
    if kind == "music":
        freqs = np.fft.rfftfreq(n, 1.0 / rate)
        shape = 1.0 / np.maximum(freqs, 30.0) ** 0.8
        shape[freqs > 16000] *= 1e-6  # AAC-like band limit
        spec = np.fft.rfft(ref, axis=1) * shape[None, :, None]
        ref = np.fft.irfft(spec, n=n, axis=1)
        ref[..., 1:] = 0.7 * ref[..., :1] + 0.3 * ref[..., 1:]  # correlated channels
        t = np.arange(n) / rate
        for j in range(nsrc):
            ref[j] *= (0.55 + 0.45 * np.sin(2 * np.pi * t / (3.0 + j) + j))[:, None]
        ref /= np.abs(ref).max() * 2
        if nsrc > 2 and seconds >= 4:
            ref[2, 2 * rate : 3 * rate] = 0.0  # one silent window -> NaN
        ref = np.round(ref * 32767) / 32767  # 16-bit
    est = (
        _fir(ref, (0.9, 0.08, 0.02)) + 0.1 * np.roll(ref, 1, axis=0) + 0.05 * ref.std() * rng.standard_normal(ref.shape)
    )
    if kind == "music":
        est[2, 2 * rate : 3 * rate] += 0.01 * rng.standard_normal((rate, nchan))
    return ref.astype(np.float32), est.astype(np.float32)


def _time(fn) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def _compare(a: tuple, b: tuple) -> dict[str, object]:
    result: dict[str, object] = {}
    for name, x, y in zip(METRICS, a, b):
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        same_nan = bool(np.array_equal(np.isnan(x), np.isnan(y)))
        finite = np.isfinite(x) & np.isfinite(y)
        result[name] = {
            "max_abs_db": float(np.abs(x[finite] - y[finite]).max()) if finite.any() else 0.0,
            "nan_pattern_equal": same_nan,
            "nan_windows": int(np.isnan(y).any(0).sum()),
        }
    return result


def main() -> int:
    rate = ARGS.rate
    kwargs = {
        "window": rate,
        "hop": rate,
        "compute_permutation": False,
        "filters_len": 512,
        "framewise_filters": False,
        "bsseval_sources_version": False,
    }
    museval = None
    if not ARGS.unmix_only:
        import museval.metrics as museval  # the reference implementation
    deadline = time.monotonic() + 60 * ARGS.max_minutes
    report: dict[str, object] = {
        "args": vars(ARGS) | {"json": str(ARGS.json), "markdown": str(ARGS.markdown), "tracks": [str(t) for t in ARGS.tracks]},
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "cpu": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "compiled_kernels": _native.available(),
        },
        "kinds": {},
    }
    for kind in [*ARGS.signals, *map(str, ARGS.tracks)]:
        label = kind if kind in ("noise", "music") else Path(kind).name
        ref, est = make_signals(kind, ARGS.seconds, ARGS.sources, ARGS.channels, rate, ARGS.seed)
        warm = ref.shape[1] if label != kind else 3 * rate  # (a song's first seconds may be silent for a stem)
        bss_eval(ref[:, :warm], est[:, :warm], device=ARGS.device, **kwargs)  # warm-up (imports, plans)
        runs: list[dict[str, float]] = []
        agreement = None
        for r in range(ARGS.runs):
            if runs and time.monotonic() > deadline:
                print(f"[{kind}] time budget reached after {len(runs)} rounds", file=sys.stderr)
                break
            row: dict[str, float] = {}
            ref_out = None
            if museval is not None:
                row["museval_wall"], row["museval_cpu"], ref_out = _time(partial(museval.bss_eval, ref, est, **kwargs))
            row["unmix_wall"], row["unmix_cpu"], out = _time(partial(bss_eval, ref, est, device=ARGS.device, **kwargs))
            if ref_out is not None and agreement is None:
                agreement = _compare(out, ref_out[:4])
            runs.append(row)
            print(f"[{kind}] round {r + 1}: " + ", ".join(f"{k} {v:.3f}s" for k, v in row.items()), file=sys.stderr)
        summary = {k: statistics.median(run[k] for run in runs) for k in runs[0]}
        if museval is not None:
            summary["ratio_wall"] = summary["museval_wall"] / summary["unmix_wall"]
            summary["ratio_cpu"] = summary["museval_cpu"] / summary["unmix_cpu"]
            summary["ratio_wall_per_round_median"] = statistics.median(
                x["museval_wall"] / x["unmix_wall"] for x in runs
            )
        report["kinds"][label] = {"runs": runs, "summary": summary, "agreement": agreement}
    if ARGS.json:
        ARGS.json.parent.mkdir(parents=True, exist_ok=True)
        ARGS.json.write_text(json.dumps(report, indent=2))
    text = _markdown(report)
    print(text)
    if ARGS.markdown:
        ARGS.markdown.parent.mkdir(parents=True, exist_ok=True)
        ARGS.markdown.write_text(text)
    return 0


def _markdown(report: dict) -> str:
    a = ARGS
    lines = [
        (
            f"{a.seconds:g} s, {a.sources} sources, {a.channels} channels, {a.rate} Hz; window = hop = 1 s, "
            f"filters_len 512, global filters (v4); {a.threads} thread(s); unmix on {a.device}, compiled kernels "
            f"{'on' if report['machine']['compiled_kernels'] else 'off'}; median of the interleaved rounds."
        ),
        "",
        (
            "| signals | rounds | museval wall (s) | unmix wall (s) | museval CPU (s) | unmix CPU (s) | "
            "speed-up (wall) | speed-up (CPU) | max abs dB diff (SDR/ISR/SIR/SAR) | NaN pattern equal |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for kind, data in report["kinds"].items():
        s, agree = data["summary"], data["agreement"]
        diff = "/".join(f"{agree[m]['max_abs_db']:.1e}" for m in METRICS) if agree else "-"
        nan = str(all(agree[m]["nan_pattern_equal"] for m in METRICS)) if agree else "-"
        lines.append(
            f"| {kind} | {len(data['runs'])} | {s.get('museval_wall', float('nan')):.2f} | {s['unmix_wall']:.3f} | "
            f"{s.get('museval_cpu', float('nan')):.2f} | {s['unmix_cpu']:.3f} | {s.get('ratio_wall', float('nan')):.1f}x | "
            f"{s.get('ratio_cpu', float('nan')):.1f}x | {diff} | {nan} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())

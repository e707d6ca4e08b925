"""Half-precision models (``Separator(precision=...)``, ``unmix separate --precision``): speed and deviation.

Separates the same audio with each precision, rounds interleaved, and prints per precision the median separation
time (wall and CPU) and the deviation from the float32 output: SDR of the output against float32's (global, per
target, then the worst target) and the max abs difference. The STFT, masks and Wiener EM stay float32; only the
target models run under ``torch.autocast``.

    python benchmarks/bench_precision.py                       # umxhq-size random weights, 60 s of noise
    python benchmarks/bench_precision.py --model demo --audio song.wav --precisions float32 bfloat16
    python benchmarks/bench_precision.py --device cuda --precisions float32 bfloat16 float16
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import unmix
from unmix.evaluate import sdr
from unmix.files import load_mixture


def global_sdr(estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """:func:`unmix.evaluate.sdr` per target of ``(nb_targets, nb_channels, nb_timesteps)`` tensors, in float64 with a
    negligible epsilon (outputs that agree to rounding read as a very high SDR, not as the MDX 1e-7 floor)."""
    return sdr(estimate.double(), reference.double(), eps=1e-30)


def build(args: argparse.Namespace) -> unmix.Separator:
    if args.model:
        return unmix.load_separator(args.model, device=args.device).freeze()
    torch.manual_seed(0)
    models = {
        name: unmix.OpenUnmix(nb_bins=2049, nb_channels=2, hidden_size=512, max_bin=1487)
        for name in ("vocals", "drums", "bass", "other")
    }
    return unmix.Separator(models, niter=1, wiener_win_len=300).to(args.device).freeze()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="registry name or folder (default: umxhq-size random weights)")
    parser.add_argument("--audio", type=Path, default=None, help="audio file (default: --duration s of noise)")
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--precisions", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    separator = build(args)
    rate = int(separator.sample_rate)
    if args.audio:
        audio = torch.as_tensor(load_mixture(separator, str(args.audio)).T.copy())
    else:
        audio = torch.rand(2, int(args.duration * rate), generator=torch.Generator().manual_seed(1)) * 2 - 1
    audio = audio[None].to(args.device)
    outputs: dict[str, torch.Tensor] = {}
    wall: dict[str, list[float]] = {p: [] for p in args.precisions}
    cpu: dict[str, list[float]] = {p: [] for p in args.precisions}
    with torch.inference_mode():
        for _ in range(args.runs):
            for precision in args.precisions:
                separator.precision = precision
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                w0, c0 = time.perf_counter(), time.process_time()
                out = separator(audio)
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                wall[precision].append(time.perf_counter() - w0)
                cpu[precision].append(time.process_time() - c0)
                outputs[precision] = out[0].float().cpu()
    seconds = audio.shape[-1] / rate
    print(f"torch {torch.__version__}, device {args.device}, threads {args.threads}, {seconds:.1f} s of audio, "
          f"model {args.model or 'umxhq-size random'}, targets {separator.targets}, runs {args.runs}")
    print("| precision | wall median [s] | CPU median [s] | x real time | speed-up vs float32 | worst-target SDR vs "
          "float32 [dB] | max abs diff |")
    print("|---|---|---|---|---|---|---|")
    base = statistics.median(wall[args.precisions[0]])
    reference = outputs[args.precisions[0]]
    for precision in args.precisions:
        median = statistics.median(wall[precision])
        worst = global_sdr(outputs[precision], reference).min().item() if precision != args.precisions[0] else float("inf")
        diff = (outputs[precision] - reference).abs().max().item()
        print(f"| {precision} | {median:.2f} | {statistics.median(cpu[precision]):.2f} | {seconds / median:.1f} | "
              f"{base / median:.2f}x | {worst:.1f} | {diff:.2e} |")


if __name__ == "__main__":
    main()

"""What chunked separation changes: SDR of chunked output against whole-track output, and the time it costs.

Separates one file with a model twice, whole-track (exact) and with ``Separator.separate_long`` for several
chunk/context lengths, and prints the SDR of each chunked output against the whole-track output per target
(higher = closer; every stage but a BiLSTM is exact, so this measures the BiLSTM's missing context).

    python benchmarks/bench_chunking.py --model demo --audio song.wav --chunk 30 --context 1 2 5 10
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import unmix  # noqa: E402
from unmix.evaluate import sdr  # noqa: E402
from unmix.files import load_mixture  # noqa: E402


def global_sdr(estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """:func:`unmix.evaluate.sdr` per target of ``(nb_targets, nb_channels, nb_timesteps)`` tensors, in float64 with a
    negligible epsilon (outputs that agree to rounding read as a very high SDR, not as the MDX 1e-7 floor)."""
    return sdr(estimate.double(), reference.double(), eps=1e-30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="demo")
    parser.add_argument("--audio", type=Path, nargs="+", required=True, help="files, concatenated")
    parser.add_argument("--chunk", type=float, default=30.0)
    parser.add_argument("--context", type=float, nargs="+", default=[1.0, 2.0, 5.0, 10.0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    separator = unmix.load_separator(args.model).freeze()
    audio = torch.cat([torch.from_numpy(load_mixture(separator, path).T.copy()) for path in args.audio], dim=-1)[None]
    seconds = audio.shape[-1] / separator.sample_rate
    with torch.inference_mode():
        start = time.process_time()
        whole = separator(audio)[0]
        whole_cpu = time.process_time() - start
        print(f"model {args.model}, {seconds:.1f} s of audio, targets {separator.targets}")
        print(f"| chunk [s] | context [s] | CPU [s] (whole: {whole_cpu:.2f}) | SDR vs whole per target [dB] |")
        print("|---|---|---|---|")
        for context in args.context:
            start = time.process_time()
            chunked = separator.separate_long(audio, chunk_seconds=args.chunk, context_seconds=context)[0]
            cpu = time.process_time() - start
            values = ", ".join(f"{name} {value:.1f}" for name, value in zip(separator.targets, global_sdr(chunked, whole)))
            print(f"| {args.chunk:g} | {context:g} | {cpu:.2f} | {values} |")


if __name__ == "__main__":
    main()

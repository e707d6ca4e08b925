"""Training throughput (samples/s): unmix's trainer against upstream Open-Unmix's ``scripts/train.py`` loop.

Same data (a MUSDB18-HQ-layout WAV folder, e.g. made by ``../shared/tools/synth_musdb.py``), same model (umxhq
size by default: hidden 512, 3 BiLSTM layers, bandwidth 16 kHz), same batch (16 x 6 s), one target, MSE on
magnitudes, Adam, float32, CPU. Two measurements, each in a fresh process per implementation and run, interleaved:

- ``epoch``: one training epoch of each implementation as it ships: its own MUSDB dataset and DataLoader (upstream:
  ``openunmix.data.MUSDBDataset`` through musdb, no workers on CPU as upstream's ``train.py`` sets; unmix:
  ``unmix.data.MUSDBDataset``), STFT encoder, forward, backward, Adam step. Upstream is driven through the
  ``train()`` function of its own ``scripts/train.py`` with the objects its ``main()`` builds.
- ``compute``: the same preloaded batches fed to both loops (data loading excluded): STFT, model, loss, backward,
  optimizer step.

Upstream's ``scripts/train.py`` is not in the ``openunmix`` wheel: pass the path of a copy (``--upstream-script``,
from github.com/sigsep/open-unmix-pytorch, not part of this repository) and a Python with ``openunmix`` 1.3.0,
``musdb``, ``scikit-learn``, ``GitPython`` and ``tqdm`` (``--upstream-python``; torchaudio is replaced by a stub as
in ``_upstream.py``: upstream's training path uses it only for ``set_audio_backend``).

Usage::

    python benchmarks/bench_train.py --root /data/synth --upstream-python /work/bench-venv/bin/python \
        --upstream-script /work/bench-upstream/scripts/train.py --threads 1 --runs 2
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _settings(args: argparse.Namespace) -> dict:
    return {"root": args.root, "target": "vocals", "batch_size": args.batch_size, "seq_dur": args.seq_dur,
            "hidden_size": args.hidden_size, "nb_layers": 3, "nfft": 4096, "nhop": 1024, "bandwidth": 16000.0,
            "batches": args.batches, "seed": 42}


def _samples_per_track(settings: dict, nb_tracks: int) -> int:
    return max(1, math.ceil(settings["batches"] * settings["batch_size"] / nb_tracks))


# ------------------------------------------------------------------------------------------------------- workers


def _worker_unmix(settings: dict, mode: str, batches_file: str | None, amp: str | None) -> dict:
    sys.path.insert(0, str(REPO))
    import torch

    from unmix.train import TrainConfig, Trainer

    names = sorted(p.name for p in (Path(settings["root"]) / "train").iterdir())
    config = TrainConfig(
        root=settings["root"], is_wav=True, targets=[settings["target"]], valid_tracks=names[:1],
        seq_dur=settings["seq_dur"], samples_per_track=_samples_per_track(settings, len(names) - 1),
        batch_size=settings["batch_size"], hidden_size=settings["hidden_size"], nb_layers=settings["nb_layers"],
        nfft=settings["nfft"], nhop=settings["nhop"], bandwidth=settings["bandwidth"], seed=settings["seed"],
        statistics=False, quiet=True, tensorboard=False, media_every=0, device="cpu", amp=amp,
    )
    with tempfile.TemporaryDirectory() as folder:
        trainer = Trainer(config, folder, resume=False)
        trainer.setup()
        if mode == "compute":
            trainer.train_loader = [(x, y) for x, y in torch.load(batches_file, weights_only=True)]
        else:  # exactly `batches` batches of the shipped loader
            trainer.train_loader = _first(trainer.train_loader, settings["batches"])
        start = time.perf_counter()
        _, nb_items = trainer.train_epoch(1)
        seconds = time.perf_counter() - start
    return {"samples": nb_items, "seconds": seconds}


class _First:
    """The first ``n`` batches of a loader, drawn lazily (the loading time stays inside the timed loop)."""

    def __init__(self, loader, n: int) -> None:
        self.loader, self.n = loader, n

    def __iter__(self):
        for k, batch in enumerate(self.loader):
            if k == self.n:
                return
            yield batch

    def __len__(self) -> int:
        return self.n


def _first(loader, n: int) -> _First:
    return _First(loader, n)


def _worker_upstream(settings: dict, mode: str, batches_file: str | None, script: str) -> dict:
    import random

    stub = types.ModuleType("torchaudio")  # STUB: upstream's training path only calls set_audio_backend
    stub.set_audio_backend = lambda backend: None
    stub.get_audio_backend = lambda: "soundfile"
    sys.modules["torchaudio"] = stub
    import torch
    from openunmix import data, model, transforms, utils

    spec = importlib.util.spec_from_file_location("upstream_train", script)
    upstream = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(upstream)
    torch.manual_seed(settings["seed"])
    random.seed(settings["seed"])
    nb_tracks = len(list((Path(settings["root"]) / "train").iterdir()))
    # what upstream's load_datasets builds for --dataset musdb (train split)
    dataset = data.MUSDBDataset(
        target=settings["target"], root=settings["root"], is_wav=True, split="train", subsets="train",
        seq_duration=settings["seq_dur"], samples_per_track=_samples_per_track(settings, nb_tracks),
        source_augmentations=data.aug_from_str(["gain", "channelswap"]), random_track_mix=True, seed=settings["seed"],
    )
    loader = torch.utils.data.DataLoader(dataset, batch_size=settings["batch_size"], shuffle=True)  # CPU: no workers
    stft, _ = transforms.make_filterbanks(n_fft=settings["nfft"], n_hop=settings["nhop"], sample_rate=44100.0)
    encoder = torch.nn.Sequential(stft, model.ComplexNorm(mono=False))
    max_bin = utils.bandwidth_to_max_bin(44100.0, settings["nfft"], settings["bandwidth"])
    unmix = model.OpenUnmix(nb_bins=settings["nfft"] // 2 + 1, nb_channels=2, hidden_size=settings["hidden_size"],
                            nb_layers=settings["nb_layers"], max_bin=max_bin)
    optimizer = torch.optim.Adam(unmix.parameters(), lr=0.001, weight_decay=0.00001)
    args = argparse.Namespace(quiet=True)
    if mode == "compute":
        sampler = [(x, y[:, 0]) for x, y in torch.load(batches_file, weights_only=True)]
    else:
        sampler = _first(loader, settings["batches"])
    count = sum(x.shape[0] for x, _ in sampler) if mode == "compute" else None
    start = time.perf_counter()
    upstream.train(args, unmix, encoder, torch.device("cpu"), sampler, optimizer)
    seconds = time.perf_counter() - start
    if count is None:
        count = min(settings["batches"] * settings["batch_size"], len(dataset))
    return {"samples": count, "seconds": seconds}


def _make_batches(settings: dict, path: Path) -> None:
    """Preload ``batches`` batches from unmix's dataset (the same tensors feed both loops in ``compute`` mode)."""
    sys.path.insert(0, str(REPO))
    import torch

    from unmix.data import MUSDBDataset

    names = sorted(p.name for p in (Path(settings["root"]) / "train").iterdir())
    dataset = MUSDBDataset(settings["root"], [settings["target"]], split="train", is_wav=True,
                           seq_duration=settings["seq_dur"], samples_per_track=64, random_track_mix=True,
                           valid_tracks=names[:1], seed=7)
    batches, index = [], 0
    for _ in range(settings["batches"]):
        items = [dataset[index + k] for k in range(settings["batch_size"])]
        index += settings["batch_size"]
        batches.append((torch.stack([x for x, _ in items]), torch.stack([y for _, y in items])))
    torch.save(batches, path)


# ---------------------------------------------------------------------------------------------------------- driver


def _run_worker(python: str, impl: str, mode: str, settings: dict, threads: int, extra: list[str]) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    command = [python, str(Path(__file__).resolve()), "--worker", impl, "--mode", mode, "--settings",
               json.dumps(settings), "--threads", str(threads), *extra]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{impl} {mode} worker failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="/work/scratch/synth", help="MUSDB18-HQ-layout WAV folder")
    parser.add_argument("--upstream-python", default="/work/bench-venv/bin/python")
    parser.add_argument("--upstream-script", default="/work/bench-upstream/scripts/train.py")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-dur", type=float, default=6.0)
    parser.add_argument("--hidden-size", type=int, default=512)
    parser.add_argument("--batches", type=int, default=4, help="batches timed per run")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--modes", nargs="+", default=["epoch", "compute"], choices=["epoch", "compute"])
    parser.add_argument("--bf16", action="store_true", help="also time unmix with --amp bf16")
    parser.add_argument("--out", help="write the raw numbers as JSON here")
    # worker mode (internal)
    parser.add_argument("--worker", choices=["unmix", "unmix-bf16", "upstream", "make-batches"], help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--settings", help=argparse.SUPPRESS)
    parser.add_argument("--batches-file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        import torch

        torch.set_num_threads(args.threads)
        settings = json.loads(args.settings)
        if args.worker == "make-batches":
            _make_batches(settings, Path(args.batches_file))
            result = {"ok": True}
        elif args.worker == "upstream":
            result = _worker_upstream(settings, args.mode, args.batches_file, args.upstream_script)
        else:
            amp = "bf16" if args.worker == "unmix-bf16" else None
            result = _worker_unmix(settings, args.mode, args.batches_file, amp)
        sys.stdout.write(json.dumps(result) + "\n")
        return 0

    settings = _settings(args)
    impls = {"unmix": sys.executable, "upstream": args.upstream_python}
    if args.bf16:
        impls["unmix-bf16"] = sys.executable
    results: dict[str, dict[str, list[float]]] = {mode: {impl: [] for impl in impls} for mode in args.modes}
    with tempfile.TemporaryDirectory() as tmp:
        batches_file = str(Path(tmp) / "batches.pt")
        if "compute" in args.modes:
            _run_worker(sys.executable, "make-batches", "compute", settings, args.threads,
                        ["--batches-file", batches_file])
        for run in range(args.runs):
            for mode in args.modes:
                order = list(impls) if run % 2 == 0 else list(reversed(impls))
                for impl in order:
                    extra = ["--batches-file", batches_file, "--upstream-script", args.upstream_script]
                    out = _run_worker(impls[impl], impl, mode, settings, args.threads, extra)
                    rate = out["samples"] / out["seconds"]
                    results[mode][impl].append(rate)
                    sys.stderr.write(f"run {run + 1} {mode:8s} {impl:11s} {out['samples']:4d} samples in "
                                     f"{out['seconds']:7.2f} s = {rate:6.3f} samples/s\n")
    lines = [f"settings: {json.dumps(settings)}, threads {args.threads}, runs {args.runs}",
             "| mode | implementation | samples/s (median) | all runs | ratio vs upstream |", "|---|---|---|---|---|"]
    for mode, table in results.items():
        base = statistics.median(table["upstream"])
        for impl, rates in table.items():
            median = statistics.median(rates)
            lines.append(f"| {mode} | {impl} | {median:.3f} | {', '.join(f'{r:.3f}' for r in rates)} | "
                         f"{median / base:.2f}x |")
    sys.stdout.write("\n".join(lines) + "\n")
    if args.out:
        Path(args.out).write_text(json.dumps({"settings": settings, "threads": args.threads, "results": results},
                                             indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Chunked separation: any track length in bounded memory.

A long signal is cut into chunks on a grid that keeps every stage but the recurrent network exact: chunk borders lie
on STFT frames and on the Wiener-block (Open-Unmix, ``wiener_win_len`` frames) or U-Net-segment (Spleeter, 512 frames)
grid, and each chunk carries ``context`` extra audio on both sides that is separated and then dropped. Within the kept
core of a chunk the STFT, masks, Wiener blocks and inverse STFT then see exactly what they see on the whole track;
only a BiLSTM sees ``context`` instead of the whole track around each frame. ``chunk_seconds=None`` (or a track that
fits in one chunk) is the exact whole-track computation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

#: Audio reader: ``read(start, stop)`` returns samples ``[start, stop)`` as ``(nb_samples, nb_channels, stop - start)``.
Reader = Callable[[int, int], Tensor]


@dataclass(frozen=True)
class Chunk:
    """One chunk: samples ``[start, stop)`` are separated, ``[core_start, core_stop)`` are kept."""

    start: int
    stop: int
    core_start: int
    core_stop: int


def alignment_frames(separator: nn.Module) -> int:
    """Frames between admissible chunk borders: the Wiener-block length and every model's segment length."""
    align = 1
    if getattr(separator, "niter", 0) > 0 and getattr(separator, "wiener_win_len", None):
        align = int(separator.wiener_win_len)
    for model in separator.target_models.values():
        segment = int(getattr(model, "segment_frames", 1) or 1)
        align = align * segment // math.gcd(align, segment)
    return align


def plan_chunks(nb_timesteps: int, core: int, context: int) -> list[Chunk]:
    """Cut ``[0, nb_timesteps)`` into cores of ``core`` samples, each read with ``context`` samples around it.

    Args:
        nb_timesteps: signal length in samples.
        core: samples kept per chunk (the last core may be shorter).
        context: samples read before and after each core (clipped at the signal's ends).

    Returns:
        The chunks in order; their cores tile the signal exactly.
    """
    if core <= 0 or context < 0:
        raise ValueError(f"need core > 0 and context >= 0 samples, got core={core}, context={context}")
    chunks = []
    for core_start in range(0, nb_timesteps, core):
        core_stop = min(core_start + core, nb_timesteps)
        chunks.append(Chunk(max(0, core_start - context), min(nb_timesteps, core_stop + context), core_start, core_stop))
    return chunks


def chunk_grid(
    separator: nn.Module, nb_timesteps: int, chunk_seconds: float | None, context_seconds: float
) -> list[Chunk]:
    """The chunks :func:`iter_chunks` uses for ``separator`` (one whole-track chunk when ``chunk_seconds`` is None).

    Chunk borders are STFT frames. With Wiener blocks (and no segmented model) the kept cores end in the middle of a
    block, so a chunk needs only half a block plus two frames of context around its core for the block that straddles
    each border to be complete and computed from frames untouched by the chunk's edge padding; the block grid itself
    is kept through ``frame_offset``. Segmented models (U-Net) put the borders on the segment grid and need a whole
    segment plus one STFT frame of context.
    """
    if chunk_seconds is None or chunk_seconds <= 0:
        return [Chunk(0, nb_timesteps, 0, nb_timesteps)]
    hop, n_fft = int(separator.stft.n_hop), int(separator.stft.n_fft)
    rate = float(separator.sample_rate)
    align = alignment_frames(separator)
    edge = -(-n_fft // (2 * hop)) + 1  # frames near a chunk edge that see padding, plus one
    wanted = math.ceil(context_seconds * rate / hop)
    core = max(1, round(chunk_seconds * rate / hop / align)) * align
    if any(int(getattr(m, "segment_frames", 1) or 1) > 1 for m in separator.target_models.values()):
        first = 0
        context = max(math.ceil(wanted / align), math.ceil((align + n_fft // hop + 1) / align)) * align
    else:
        first = align // 2
        context = max(wanted, align // 2 + edge)
    nb_frames = nb_timesteps // hop + 1
    if nb_frames <= first + core + context:
        return [Chunk(0, nb_timesteps, 0, nb_timesteps)]
    borders = [0] + list(range(first + core, nb_frames, core))
    chunks = []
    for k, begin in enumerate(borders):
        end = borders[k + 1] if k + 1 < len(borders) else None
        core_start = begin * hop
        core_stop = nb_timesteps if end is None else end * hop
        start = max(0, (begin - context) * hop)
        stop = nb_timesteps if end is None else min(nb_timesteps, (end + context) * hop)
        chunks.append(Chunk(start, stop, core_start, core_stop))
    return chunks


def iter_chunks(
    separator: nn.Module,
    read: Reader,
    nb_timesteps: int,
    chunk_seconds: float | None = 30.0,
    context_seconds: float = 5.0,
) -> Iterator[tuple[Chunk, Tensor]]:
    """Separate a signal chunk by chunk.

    Args:
        separator: a :class:`~unmix.separator.Separator`.
        read: returns samples ``[start, stop)`` as ``(nb_samples, nb_channels, stop - start)``.
        nb_timesteps: signal length in samples.
        chunk_seconds: kept length per chunk (rounded to the chunk grid); None separates the whole track at once.
        context_seconds: audio added on both sides of each chunk (rounded up to the chunk grid).

    Yields:
        ``(chunk, estimates)`` with estimates ``(nb_samples, nb_targets[+1], nb_channels, core_stop - core_start)``.
    """
    for chunk in chunk_grid(separator, nb_timesteps, chunk_seconds, context_seconds):
        audio = read(chunk.start, chunk.stop)
        if audio.shape[-1] != chunk.stop - chunk.start:
            raise ValueError(f"reader returned {audio.shape[-1]} samples for [{chunk.start}, {chunk.stop})")
        estimates = separator(audio, frame_offset=chunk.start // int(separator.stft.n_hop))
        yield chunk, estimates[..., chunk.core_start - chunk.start : chunk.core_stop - chunk.start]


def separate_chunked(
    separator: nn.Module, audio: Tensor, chunk_seconds: float | None = 30.0, context_seconds: float = 5.0
) -> Tensor:
    """Separate ``audio`` ``(nb_samples, nb_channels, nb_timesteps)`` chunk by chunk.

    Returns:
        ``(nb_samples, nb_targets[+1], nb_channels, nb_timesteps)``, as ``separator(audio)`` but with memory bounded
        by the chunk length (plus the output itself).
    """
    nb_timesteps = audio.shape[-1]
    out = None
    for chunk, estimates in iter_chunks(
        separator, lambda a, b: audio[..., a:b], nb_timesteps, chunk_seconds, context_seconds
    ):
        if out is None:
            out = estimates.new_empty(estimates.shape[:-1] + (nb_timesteps,))
        out[..., chunk.core_start : chunk.core_stop] = estimates
    if out is None:
        raise ValueError("cannot separate an empty signal (0 samples)")
    return out

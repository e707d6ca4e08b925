"""Streaming file separation: read, separate and write a long file chunk by chunk in bounded memory.

The input is read with soundfile one chunk (plus context) at a time, resampled per chunk on a grid that makes the
resampled pieces line up with a whole-file resampling, separated with :func:`unmix.chunking.iter_chunks`, and each
kept core is appended to the output files. Outputs go to temporary files renamed into place at the end (lossy codecs:
a temporary float WAV transcoded by ffmpeg), so an interrupted run leaves no partial file.
"""

from __future__ import annotations

import contextlib
import logging
import math
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from unmix.audio import prepare_waveform
from unmix.audio.ffmpeg import Codec, encode
from unmix.chunking import chunk_grid, iter_chunks
from unmix.errors import AudioIOError
from unmix.utils.atomic import atomic_path

logger = logging.getLogger(__name__)

#: soundfile (format, subtype) per codec written directly; lossy codecs go through a float WAV and ffmpeg.
_DIRECT = {Codec.WAV: ("WAV", "FLOAT"), Codec.FLAC: ("FLAC", "PCM_24"), Codec.OGG: ("OGG", "VORBIS")}
#: resampling filter margin (model-rate samples) read beyond each chunk
_RESAMPLE_MARGIN = 4096


class ChunkReader:
    """Reads model-rate samples ``[start, stop)`` of (a region of) a soundfile-readable file.

    Args:
        path: the audio file.
        model_rate: the separator's sample rate.
        model_channels: channels to deliver (mono is duplicated; more needs ``downmix``).
        offset: start of the region in seconds.
        duration: length of the region in seconds (None: to the end).
        downmix: allow averaging more channels than ``model_channels``.
    """

    def __init__(
        self,
        path: Path,
        model_rate: float,
        model_channels: int,
        offset: float = 0.0,
        duration: float | None = None,
        downmix: bool = False,
    ) -> None:
        import soundfile

        self.path = Path(path)
        info = soundfile.info(str(self.path))
        self.file_rate = int(info.samplerate)
        self.model_rate = int(round(model_rate))
        self.file_channels = int(info.channels)
        self.model_channels = model_channels
        self.downmix = downmix
        self.first = min(int(round((offset or 0.0) * self.file_rate)), int(info.frames))
        available = int(info.frames) - self.first
        self.file_length = available if duration is None else min(available, int(round(duration * self.file_rate)))
        if self.file_length <= 0:
            raise AudioIOError(f"'{self.path}' has no samples in the requested region (offset {offset} s)")
        g = math.gcd(self.file_rate, self.model_rate)
        self.step_file, self.step_model = self.file_rate // g, self.model_rate // g
        self.length = int(round(self.file_length * self.model_rate / self.file_rate))

    def __call__(self, start: int, stop: int) -> torch.Tensor:
        """Samples ``[start, stop)`` at the model rate as ``(1, nb_channels, stop - start)``."""
        import soundfile

        margin = 0 if self.file_rate == self.model_rate else _RESAMPLE_MARGIN
        # read on the grid where file and model samples coincide, so pieces resample like the whole file
        grid_start = max(0, (start - margin) // self.step_model)
        grid_stop = -(-(stop + margin) // self.step_model)
        file_start = grid_start * self.step_file
        file_stop = min(self.file_length, grid_stop * self.step_file)
        data = soundfile.read(
            str(self.path), start=self.first + file_start, stop=self.first + file_stop, dtype="float32",
            always_2d=True,
        )[0]
        data = prepare_waveform(
            data, self.file_rate, self.model_rate, self.model_channels, downmix=self.downmix, source=str(self.path)
        )
        skip = start - grid_start * self.step_model
        piece = data[skip : skip + stop - start]
        if piece.shape[0] < stop - start:
            piece = np.pad(piece, ((0, stop - start - piece.shape[0]), (0, 0)))
        return torch.from_numpy(np.ascontiguousarray(piece.T))[None]


def stream_separate(
    separator: nn.Module,
    reader: ChunkReader,
    outputs: Mapping[str, Path],
    codec: Codec | str = "wav",
    bitrate: str | None = "128k",
    aggregate: Mapping[str, Sequence[str]] | None = None,
    chunk_seconds: float | None = 30.0,
    context_seconds: float = 5.0,
    progress: bool = False,
) -> list[Path]:
    """Separate ``reader``'s signal chunk by chunk, appending each kept core to the output files.

    Args:
        separator: the :class:`~unmix.separator.Separator`.
        reader: the input, read at the model rate.
        outputs: ``{source or aggregate name: final path}``.
        codec: output codec (wav, flac and ogg are written directly; others through ffmpeg).
        bitrate: bitrate for lossy codecs.
        aggregate: optional ``{name: [targets]}`` sums (upstream's ``aggregate_dict``).
        chunk_seconds: kept length per chunk (see :func:`unmix.chunking.chunk_grid`).
        context_seconds: context separated around each chunk and dropped.
        progress: show a tqdm bar over chunks.

    Returns:
        The written paths.
    """
    import soundfile
    from tqdm import tqdm

    chosen = Codec(str(codec))
    rate = int(round(float(separator.sample_rate)))
    names = list(separator.targets)
    groups = {name: [name] for name in names} if aggregate is None else {k: list(v) for k, v in aggregate.items()}
    indices = {key: [names.index(m) for m in members] for key, members in groups.items()}
    fmt, subtype = _DIRECT.get(chosen, ("WAV", "FLOAT"))
    nb_chunks = len(chunk_grid(separator, reader.length, chunk_seconds, context_seconds))
    with contextlib.ExitStack() as stack:
        finals = {key: stack.enter_context(atomic_path(outputs[key])) for key in groups}
        if chosen in _DIRECT:
            staged = finals
        else:  # float WAV next to the output, transcoded at the end and removed with its folder
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=Path(outputs[next(iter(groups))]).parent)))
            staged = {key: scratch / f"{k}.wav" for k, key in enumerate(groups)}
        files = {
            key: stack.enter_context(
                soundfile.SoundFile(str(staged[key]), "w", rate, reader.model_channels, subtype, format=fmt)
            )
            for key in groups
        }
        chunks = iter_chunks(separator, reader, reader.length, chunk_seconds, context_seconds)
        stack.enter_context(torch.inference_mode())
        for _, estimates in tqdm(chunks, total=nb_chunks, desc="chunks", unit="chunk", disable=not progress,
                                 leave=False):
            estimates = estimates[0].cpu()  # (nb_targets, nb_channels, core)
            for key, members in indices.items():
                block = estimates[members].sum(dim=0) if len(members) > 1 else estimates[members[0]]
                files[key].write(block.T.numpy())
        for handle in files.values():
            handle.close()
        if chosen not in _DIRECT:
            for key in groups:
                encode(finals[key], staged[key], rate, chosen.ffmpeg_encoder, chosen.ffmpeg_container, bitrate,
                       display_path=Path(outputs[key]))
    return [Path(outputs[key]) for key in groups]

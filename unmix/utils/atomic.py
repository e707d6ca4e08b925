"""Atomic file writes: every file unmix writes goes through here.

A file is written to a temporary name in the destination folder and renamed into place only once it is complete,
so an interrupted run never leaves a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` when the block ends without error.

    The temporary file keeps the final suffix (or ``suffix``) so format-sniffing writers (soundfile, ffmpeg) choose
    the right format. On error the temporary file is removed and the destination is left untouched.

    Args:
        path: final destination.
        suffix: suffix for the temporary file; defaults to the suffix of ``path``.

    Yields:
        The temporary path to write to.
    """
    dest = Path(path)
    suffix = dest.suffix if suffix is None else suffix
    tmp = _create_temporary(dest.parent, f".{dest.stem}.", f".part{suffix}")
    try:
        yield tmp
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _create_temporary(folder: Path, prefix: str, suffix: str) -> Path:
    """Create an empty file with a fresh name in ``folder``, with the permissions the umask gives new files.

    (``tempfile.mkstemp`` would create it readable by its owner only, and the rename would keep that.)
    """
    for _ in range(100):
        candidate = folder / f"{prefix}{secrets.token_hex(4)}{suffix}"
        try:
            os.close(os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"could not create a temporary file in {folder}")


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=4, sort_keys=True) + "\n")


def atomic_torch_save(path: str | os.PathLike[str], obj: Any) -> None:
    """``torch.save`` ``obj`` to ``path`` atomically."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)

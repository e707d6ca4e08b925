"""TensorBundle reader: CRC32C, the real Spleeter-layout checkpoint, truncated and corrupted files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from unmix.errors import CheckpointFormatError
from unmix.pretrained.tf_checkpoint import (
    TABLE_MAGIC,
    crc32c,
    mask_crc,
    read_checkpoint,
    read_index,
    resolve_prefix,
    unmask_crc,
)


def crc32c_bitwise(data: bytes) -> int:
    """Bit-at-a-time CRC-32C, written from the definition (independent of the table/parallel code)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def test_crc32c_known_vectors() -> None:
    # RFC 3720 (iSCSI) B.4 test vectors and the classic check value
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(bytes(32)) == 0x8A9136AA
    assert crc32c(b"\xff" * 32) == 0x62A8AB43
    assert crc32c(bytes(range(32))) == 0x46DD794E
    assert crc32c(b"") == 0


@pytest.mark.parametrize("size", [1, 100, 8191, 8192, 8193, 20_000, 70_001])
def test_crc32c_parallel_path_matches_bitwise(size: int) -> None:
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    assert crc32c(data) == crc32c_bitwise(data)
    assert crc32c(np.frombuffer(data, dtype=np.uint8)) == crc32c_bitwise(data)


def test_mask_roundtrip() -> None:
    for value in (0, 1, 0xFFFFFFFF, 0x12345678, crc32c(b"abc")):
        assert unmask_crc(mask_crc(value)) == value
    assert mask_crc(0) == 0xA282EAD8


@pytest.fixture(scope="module")
def model_dir(reference_dir: Path) -> Path:
    return reference_dir / "spleeter" / "model"


@pytest.fixture(scope="module")
def variables(reference_dir: Path) -> list:
    return json.loads((reference_dir / "spleeter" / "README.json").read_text())["variables"]


def test_reads_the_reference_checkpoint(model_dir: Path, variables: list) -> None:
    tensors = read_checkpoint(model_dir)
    assert len(tensors) == 149
    expected = {name: tuple(shape) for name, shape in variables if name != "global_step"}
    assert len(expected) == 148
    for name, shape in expected.items():
        assert tensors[name].shape == shape, name
        assert tensors[name].dtype == np.float32
    assert set(tensors) - set(expected) == {"global_step"}
    assert tensors["global_step"].dtype == np.int64 and tensors["global_step"].shape == ()
    total = sum(t.nbytes for t in tensors.values())
    assert total == (model_dir / "model.data-00000-of-00001").stat().st_size == 78_614_080
    # the same arrays whichever way the checkpoint is named
    again = read_checkpoint(model_dir / "model.index", verify=False)
    np.testing.assert_array_equal(again["conv2d_13/kernel"], tensors["conv2d_13/kernel"])


def test_index_entries_are_dense_and_sorted(model_dir: Path) -> None:
    header, entries = read_index(model_dir / "model.index")
    assert header == {"num_shards": 1, "endianness": 0}
    names = list(entries)
    assert names == sorted(names, key=lambda n: n.encode())
    offset = 0
    for entry in entries.values():
        assert entry.offset == offset and entry.shard_id == 0 and entry.crc32c is not None
        offset += entry.size
    assert resolve_prefix(model_dir) == model_dir / "model"


@pytest.fixture
def copy(model_dir: Path, tmp_path: Path) -> Path:
    """A private copy (index copied, data shard copied lazily by tests that corrupt it)."""
    folder = tmp_path / "model"
    folder.mkdir()
    shutil.copy(model_dir / "checkpoint", folder / "checkpoint")
    shutil.copy(model_dir / "model.index", folder / "model.index")
    (folder / "model.data-00000-of-00001").symlink_to(model_dir / "model.data-00000-of-00001")
    return folder


def _flip(path: Path, position: int) -> None:
    data = bytearray(path.read_bytes())
    data[position] ^= 0x10
    path.write_bytes(bytes(data))


def test_corrupted_index_block_fails_crc(copy: Path) -> None:
    _flip(copy / "model.index", 40)  # inside the data block (a key byte)
    with pytest.raises(CheckpointFormatError, match="CRC32C"):
        read_checkpoint(copy)


def test_truncated_index(copy: Path) -> None:
    index = copy / "model.index"
    index.write_bytes(index.read_bytes()[:-10])
    with pytest.raises(CheckpointFormatError, match="magic|truncated"):
        read_checkpoint(copy)
    index.write_bytes(b"\x00" * 20)
    with pytest.raises(CheckpointFormatError, match="shorter than"):
        read_checkpoint(copy)


def test_index_block_handle_outside_file(copy: Path) -> None:
    index = copy / "model.index"
    data = index.read_bytes()
    # keep the footer but drop most of the blocks: the handles now point past the end
    index.write_bytes(data[:100] + data[-48:])
    with pytest.raises(CheckpointFormatError, match="outside"):
        read_checkpoint(copy)


def test_not_an_index(copy: Path) -> None:
    (copy / "model.index").write_bytes(b"x" * 100)
    with pytest.raises(CheckpointFormatError, match=f"{TABLE_MAGIC:#018x}"):
        read_checkpoint(copy)


def _private_data(copy: Path) -> Path:
    shard = copy / "model.data-00000-of-00001"
    source = shard.resolve()
    shard.unlink()
    shutil.copy(source, shard)
    return shard


def test_corrupted_data_shard_fails_tensor_crc(copy: Path) -> None:
    shard = _private_data(copy)
    _, entries = read_index(copy / "model.index")
    entry = entries["conv2d_8/kernel"]
    _flip(shard, entry.offset + entry.size // 2)
    with pytest.raises(CheckpointFormatError, match="conv2d_8/kernel.*CRC32C"):
        read_checkpoint(copy)
    assert read_checkpoint(copy, verify=False)["conv2d_8/kernel"].shape == entry.shape


def test_truncated_data_shard(copy: Path) -> None:
    shard = _private_data(copy)
    with open(shard, "r+b") as handle:
        handle.truncate(shard.stat().st_size - 100)
    with pytest.raises(CheckpointFormatError, match="truncated"):
        read_checkpoint(copy)


def test_missing_data_shard_and_missing_checkpoint(copy: Path, tmp_path: Path) -> None:
    (copy / "model.data-00000-of-00001").unlink()
    with pytest.raises(CheckpointFormatError, match="missing"):
        read_checkpoint(copy)
    with pytest.raises(CheckpointFormatError, match="neither a checkpoint prefix"):
        read_checkpoint(tmp_path / "nothing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointFormatError, match="found 0"):
        read_checkpoint(empty)

"""Pure-Python reader of TensorFlow checkpoints V2 (TensorBundle), no TensorFlow needed.

A checkpoint with prefix ``P`` is ``P.index`` (an SSTable mapping tensor names to ``BundleEntryProto`` records) and
``P.data-SSSSS-of-NNNNN`` shard files holding the raw little-endian tensor bytes. Layout read here:

- SSTable footer (last 48 bytes): metaindex and index ``BlockHandle`` (two varint64 each), zero padding, magic
  ``0xdb4775248b80fb57``.
- Block on disk: ``contents[size] | type (1 byte, 0 = uncompressed) | masked CRC32C of contents + type``.
- Block contents: prefix-compressed entries ``varint shared | varint non_shared | varint value_len | key delta |
  value``, then ``uint32 restarts[n] | uint32 n``. The index block maps separator keys to data-block handles.
- Entry ``""`` is the ``BundleHeaderProto`` (num_shards, endianness); every other entry is a ``BundleEntryProto``
  (dtype, shape, shard_id, offset, size, masked crc32c of the tensor bytes).

Every check that can fail (footer magic, block bounds, block CRC, protobuf bounds, shard size, tensor CRC) raises
:class:`unmix.errors.CheckpointFormatError` naming the file and what was found.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from unmix.errors import CheckpointFormatError

logger = logging.getLogger(__name__)

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
BLOCK_TRAILER_SIZE = 5
_MASK_DELTA = 0xA282EAD8
_CRC32C_POLY = 0x82F63B78

# DataType enum (tensorflow/core/framework/types.proto) -> numpy dtype (little-endian form).
_DTYPES: dict[int, str] = {
    1: "f4", 2: "f8", 3: "i4", 4: "u1", 5: "i2", 6: "i1", 8: "c8", 9: "i8", 10: "b1",
    17: "u2", 18: "c16", 19: "f2", 22: "u4", 23: "u8",
}
_DT_BFLOAT16 = 14


# ----------------------------------------------------------------------------------------------------------- CRC32C
def _make_table() -> np.ndarray:
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(_CRC32C_POLY), table >> 1).astype(np.uint32)
    return table


_TABLE = _make_table()
_TABLE_LIST = [int(v) for v in _TABLE]
_PARALLEL_MIN_BYTES = 8192


def _gf2_matrix_times(columns: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Apply the GF(2) linear map given by its 32 column images to every uint32 in ``values``."""
    out = np.zeros_like(values)
    for bit in range(32):
        out ^= np.where((values >> np.uint32(bit)) & np.uint32(1), columns[bit], np.uint32(0)).astype(np.uint32)
    return out


@functools.lru_cache(maxsize=64)
def _zeros_operator(nbytes: int) -> np.ndarray:
    """Columns of the map that advances a raw CRC register over ``nbytes`` zero bytes."""
    # One zero bit: shift right, xor the polynomial when the low bit was set.
    single = np.array([(_CRC32C_POLY if bit == 0 else 1 << (bit - 1)) for bit in range(32)], dtype=np.uint32)
    result = np.array([1 << bit for bit in range(32)], dtype=np.uint32)  # identity
    power = single
    nbits = 8 * nbytes
    while nbits:
        if nbits & 1:
            result = _gf2_matrix_times(power, result)
        nbits >>= 1
        if nbits:
            power = _gf2_matrix_times(power, power)
    return result


def _raw_crc(data: np.ndarray) -> int:
    """CRC register (initial value 0, no final xor) after ``data`` (uint8, >= 2 bytes), on parallel chunks."""
    size = int(data.size)
    nb_chunks = 1 << min(14, max(1, (size // 2048).bit_length() - 1))
    chunk = -(-size // nb_chunks)
    # Leading zero bytes leave a zero register unchanged, so pad at the front to an exact grid.
    padded = np.zeros(nb_chunks * chunk, dtype=np.uint8)
    padded[nb_chunks * chunk - size:] = data
    columns = np.ascontiguousarray(padded.reshape(nb_chunks, chunk).T)
    regs = np.zeros(nb_chunks, dtype=np.uint32)
    for row in columns:
        regs = _TABLE[(regs ^ row) & np.uint32(0xFF)] ^ (regs >> np.uint32(8))
    # Tree combination: reg(A || B) = Z_len(B)(reg(A)) xor reg(B).
    span = chunk
    while regs.size > 1:
        regs = _gf2_matrix_times(_zeros_operator(span), regs[0::2]) ^ regs[1::2]
        span *= 2
    return int(regs[0])


def crc32c(data: bytes | bytearray | memoryview | np.ndarray) -> int:
    """CRC-32C (Castagnoli, reflected polynomial 0x82F63B78, init and final xor 0xFFFFFFFF) of ``data``."""
    array = np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8) if not isinstance(data, np.ndarray) else (
        data.reshape(-1).view(np.uint8))
    size = int(array.size)
    if size < _PARALLEL_MIN_BYTES:
        crc = 0xFFFFFFFF
        for byte in array.tolist():
            crc = _TABLE_LIST[(crc ^ byte) & 0xFF] ^ (crc >> 8)
        return crc ^ 0xFFFFFFFF
    # Linearity: reg(data, init) = Z_len(init) xor reg(data, 0).
    init = int(_gf2_matrix_times(_zeros_operator(size), np.array([0xFFFFFFFF], dtype=np.uint32))[0])
    return (init ^ _raw_crc(array)) ^ 0xFFFFFFFF


def mask_crc(crc: int) -> int:
    """TensorFlow/LevelDB CRC masking: rotate right by 15 bits and add a constant."""
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


def unmask_crc(masked: int) -> int:
    """Inverse of :func:`mask_crc`."""
    rot = (masked - _MASK_DELTA) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


# ------------------------------------------------------------------------------------------------ varint, protobuf
class _Reader:
    """Bounded cursor over bytes; every overrun raises CheckpointFormatError with ``what`` in the message."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.pos = 0
        self.what = what

    def fail(self, problem: str) -> CheckpointFormatError:
        return CheckpointFormatError(f"{self.what}: {problem} at byte {self.pos} of {len(self.data)}; the file is "
                                     "truncated or corrupted, re-download or re-export the checkpoint")

    def varint(self) -> int:
        result = 0
        for shift in range(0, 70, 7):
            if self.pos >= len(self.data):
                raise self.fail("varint runs past the end")
            byte = self.data[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
        raise self.fail("varint longer than 10 bytes")

    def take(self, count: int) -> bytes:
        if count < 0 or self.pos + count > len(self.data):
            raise self.fail(f"field of {count} bytes runs past the end")
        out = self.data[self.pos:self.pos + count]
        self.pos += count
        return out

    def done(self) -> bool:
        return self.pos >= len(self.data)


def _proto_fields(data: bytes, what: str) -> list[tuple[int, int, int | bytes]]:
    """Decode a protobuf message into ``(field, wire_type, value)`` triples (no schema)."""
    reader = _Reader(data, what)
    fields: list[tuple[int, int, int | bytes]] = []
    while not reader.done():
        tag = reader.varint()
        field, wire = tag >> 3, tag & 7
        value: int | bytes
        if wire == 0:
            value = reader.varint()
        elif wire == 1:
            value = int.from_bytes(reader.take(8), "little")
        elif wire == 2:
            value = reader.take(reader.varint())
        elif wire == 5:
            value = int.from_bytes(reader.take(4), "little")
        else:
            raise reader.fail(f"unsupported protobuf wire type {wire} (field {field})")
        fields.append((field, wire, value))
    return fields


@dataclass(frozen=True)
class TensorEntry:
    """One tensor of a checkpoint (a decoded ``BundleEntryProto``)."""

    name: str
    dtype: int
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    crc32c: int | None


def _parse_shape(data: bytes, what: str) -> tuple[int, ...]:
    dims: list[int] = []
    for field, _, value in _proto_fields(data, what):
        if field == 2 and isinstance(value, bytes):
            size = 0
            for sub_field, _, sub_value in _proto_fields(value, what):
                if sub_field == 1 and isinstance(sub_value, int):
                    size = sub_value - (1 << 64) if sub_value >= 1 << 63 else sub_value
            if size < 0:
                raise CheckpointFormatError(f"{what}: unknown dimension {size}; only fully defined shapes can be read")
            dims.append(size)
        elif field == 3 and value:
            raise CheckpointFormatError(f"{what}: tensor of unknown rank cannot be read")
    return tuple(dims)


def _parse_entry(name: str, data: bytes, index_path: Path) -> TensorEntry:
    what = f"{index_path}: entry {name!r}"
    values: dict[str, int | bytes] = {}
    for field, _, value in _proto_fields(data, what):
        key = {1: "dtype", 2: "shape", 3: "shard_id", 4: "offset", 5: "size", 6: "crc32c", 7: "slices"}.get(field)
        if key is not None:
            values[key] = value
    if "slices" in values:
        raise CheckpointFormatError(f"{what} is a partitioned (sliced) variable, which is not supported; save the "
                                    "checkpoint without partitioning")
    shape = _parse_shape(values["shape"], what) if isinstance(values.get("shape"), bytes) else ()
    crc = values.get("crc32c")
    return TensorEntry(name=name, dtype=int(values.get("dtype", 0)), shape=shape,
                       shard_id=int(values.get("shard_id", 0)), offset=int(values.get("offset", 0)),
                       size=int(values.get("size", 0)), crc32c=int(crc) if isinstance(crc, int) else None)


# -------------------------------------------------------------------------------------------------------- SSTable
def _read_block(file: bytes, offset: int, size: int, path: Path, label: str) -> bytes:
    end = offset + size + BLOCK_TRAILER_SIZE
    if offset < 0 or size < 0 or end > len(file) - FOOTER_SIZE:
        raise CheckpointFormatError(f"{path}: {label} block (offset {offset}, size {size}) lies outside the "
                                    f"{len(file)}-byte file; the index is truncated or corrupted, re-download it")
    contents = file[offset:offset + size]
    block_type = file[offset + size]
    stored = int.from_bytes(file[offset + size + 1:end], "little")
    actual = mask_crc(crc32c(file[offset:offset + size + 1]))
    if stored != actual:
        raise CheckpointFormatError(f"{path}: {label} block at offset {offset} fails its CRC32C check (stored "
                                    f"{stored:#010x}, computed {actual:#010x}); the index file is corrupted, "
                                    "re-download it")
    if block_type != 0:
        raise CheckpointFormatError(f"{path}: {label} block uses compression type {block_type} (1 = Snappy), "
                                    "which is not supported; TensorFlow writes checkpoint indexes uncompressed")
    return contents


def _block_entries(block: bytes, path: Path, label: str) -> list[tuple[bytes, bytes]]:
    if len(block) < 4:
        raise CheckpointFormatError(f"{path}: {label} block of {len(block)} bytes is too short; corrupted index")
    nb_restarts = int.from_bytes(block[-4:], "little")
    limit = len(block) - 4 * (nb_restarts + 1)
    if limit < 0:
        raise CheckpointFormatError(f"{path}: {label} block claims {nb_restarts} restarts in {len(block)} bytes; "
                                    "corrupted index")
    reader = _Reader(block[:limit], f"{path}: {label} block")
    entries: list[tuple[bytes, bytes]] = []
    key = b""
    while not reader.done():
        shared, non_shared, value_len = reader.varint(), reader.varint(), reader.varint()
        if shared > len(key):
            raise reader.fail(f"entry shares {shared} bytes with a {len(key)}-byte key")
        key = key[:shared] + reader.take(non_shared)
        entries.append((key, reader.take(value_len)))
    return entries


def _handle(value: bytes, what: str) -> tuple[int, int]:
    reader = _Reader(value, what)
    return reader.varint(), reader.varint()


def read_index(index_path: str | Path) -> tuple[dict[str, int], dict[str, TensorEntry]]:
    """Parse a ``.index`` file.

    Args:
        index_path: path of ``<prefix>.index``.

    Returns:
        ``(header, entries)``: header fields ``num_shards`` and ``endianness`` (0 little, 1 big), and the tensor
        entries by name, in the file's (sorted) order.

    Raises:
        CheckpointFormatError: truncated file, bad magic, CRC mismatch or malformed records.
    """
    path = Path(index_path)
    file = path.read_bytes()
    if len(file) < FOOTER_SIZE:
        raise CheckpointFormatError(f"{path}: {len(file)} bytes is shorter than the {FOOTER_SIZE}-byte SSTable "
                                    "footer; the index is truncated, re-download the checkpoint")
    footer = file[-FOOTER_SIZE:]
    magic = int.from_bytes(footer[40:], "little")
    if magic != TABLE_MAGIC:
        raise CheckpointFormatError(f"{path}: footer magic {magic:#018x} is not {TABLE_MAGIC:#018x}; not a "
                                    "TensorFlow checkpoint index, or it is truncated/corrupted")
    reader = _Reader(footer[:40], f"{path}: footer")
    reader.varint(), reader.varint()  # metaindex handle, unused
    index_offset, index_size = reader.varint(), reader.varint()
    index_block = _read_block(file, index_offset, index_size, path, "index")
    header: dict[str, int] = {"num_shards": 1, "endianness": 0}
    entries: dict[str, TensorEntry] = {}
    seen_header = False
    for _, handle_value in _block_entries(index_block, path, "index"):
        offset, size = _handle(handle_value, f"{path}: index entry")
        for key, value in _block_entries(_read_block(file, offset, size, path, "data"), path, "data"):
            if key == b"":
                seen_header = True
                for field, _, field_value in _proto_fields(value, f"{path}: header"):
                    if field == 1 and isinstance(field_value, int):
                        header["num_shards"] = field_value
                    elif field == 2 and isinstance(field_value, int):
                        header["endianness"] = field_value
                continue
            name = key.decode("utf-8", errors="replace")
            entries[name] = _parse_entry(name, value, path)
    if not seen_header:
        raise CheckpointFormatError(f"{path}: no BundleHeaderProto entry; not a TensorBundle (checkpoint V2) index")
    if header["num_shards"] < 1 or header["endianness"] not in (0, 1):
        raise CheckpointFormatError(f"{path}: invalid header (num_shards={header['num_shards']}, "
                                    f"endianness={header['endianness']}); corrupted index")
    return header, entries


# ---------------------------------------------------------------------------------------------- checkpoint files
def resolve_prefix(prefix_or_dir: str | Path) -> Path:
    """Checkpoint prefix from a prefix, a ``.index`` path, or a folder (its ``checkpoint`` file or sole index)."""
    path = Path(prefix_or_dir)
    if path.suffix == ".index" and path.is_file():
        return path.with_suffix("")
    if path.is_dir():
        state = path / "checkpoint"
        if state.is_file():
            match = re.search(r'^model_checkpoint_path:\s*"((?:[^"\\]|\\.)*)"', state.read_text(errors="replace"),
                              re.MULTILINE)
            if match:
                prefix = Path(match.group(1))
                prefix = prefix if prefix.is_absolute() else path / prefix
                if prefix.with_name(prefix.name + ".index").is_file():
                    return prefix
                prefix = path / prefix.name  # folder moved since training: look beside the state file
                if prefix.with_name(prefix.name + ".index").is_file():
                    return prefix
        indexes = sorted(p for p in path.glob("*.index") if not p.name.startswith("._"))
        if len(indexes) == 1:
            return indexes[0].with_suffix("")
        raise CheckpointFormatError(f"{path}: found {len(indexes)} '*.index' files and no usable 'checkpoint' "
                                    "file; pass the checkpoint prefix (e.g. <dir>/model) instead of the folder")
    if path.with_name(path.name + ".index").is_file():
        return path
    raise CheckpointFormatError(f"{path}: neither a checkpoint prefix (no '{path.name}.index') nor a folder; "
                                "pass the model folder or the prefix of its '.index' file")


def _numpy_dtype(entry: TensorEntry, big_endian: bool, index_path: Path) -> np.dtype:
    if entry.dtype == _DT_BFLOAT16:
        return np.dtype(">u2" if big_endian else "<u2")
    code = _DTYPES.get(entry.dtype % 100)
    if code is None:
        raise CheckpointFormatError(f"{index_path}: tensor {entry.name!r} has TensorFlow dtype enum {entry.dtype}, "
                                    "which this reader does not support (numeric types only)")
    return np.dtype(code).newbyteorder(">" if big_endian else "<")


def read_checkpoint(prefix_or_dir: str | Path, verify: bool = True) -> dict[str, np.ndarray]:
    """Read every tensor of a TensorFlow V2 checkpoint.

    Args:
        prefix_or_dir: checkpoint prefix (``<dir>/model``), its ``.index`` file, or the folder holding it.
        verify: check the masked CRC32C of every tensor's bytes.

    Returns:
        Tensors by variable name (e.g. ``"conv2d/kernel"``), as native-endian numpy arrays; bfloat16 is returned as
        float32.

    Raises:
        CheckpointFormatError: missing, truncated or corrupted index or data shard, or unsupported content.
    """
    prefix = resolve_prefix(prefix_or_dir)
    index_path = prefix.with_name(prefix.name + ".index")
    header, entries = read_index(index_path)
    num_shards = header["num_shards"]
    big_endian = header["endianness"] == 1
    tensors: dict[str, np.ndarray] = {}
    handles: dict[int, tuple[Path, object, int]] = {}
    try:
        for name, entry in entries.items():
            if not 0 <= entry.shard_id < num_shards:
                raise CheckpointFormatError(f"{index_path}: tensor {name!r} is in shard {entry.shard_id} of "
                                            f"{num_shards}; corrupted index")
            if entry.shard_id not in handles:
                shard = prefix.with_name(f"{prefix.name}.data-{entry.shard_id:05d}-of-{num_shards:05d}")
                if not shard.is_file():
                    raise CheckpointFormatError(f"data shard {shard} is missing; copy the whole checkpoint "
                                                "(index and every .data file)")
                handles[entry.shard_id] = (shard, open(shard, "rb"), shard.stat().st_size)  # noqa: SIM115
            shard, handle, shard_size = handles[entry.shard_id]
            dtype = _numpy_dtype(entry, big_endian, index_path)
            count = int(np.prod(entry.shape, dtype=np.int64))
            if entry.size != count * dtype.itemsize:
                raise CheckpointFormatError(f"{index_path}: tensor {name!r} of shape {entry.shape} declares "
                                            f"{entry.size} bytes, expected {count * dtype.itemsize}; corrupted index")
            if entry.offset + entry.size > shard_size:
                raise CheckpointFormatError(f"{shard}: tensor {name!r} needs bytes {entry.offset}..."
                                            f"{entry.offset + entry.size} but the shard has {shard_size} bytes; the "
                                            "data file is truncated, re-download the checkpoint")
            handle.seek(entry.offset)  # type: ignore[attr-defined]
            raw = handle.read(entry.size)  # type: ignore[attr-defined]
            if verify and entry.crc32c is not None:
                actual = mask_crc(crc32c(raw))
                if actual != entry.crc32c:
                    raise CheckpointFormatError(f"{shard}: tensor {name!r} fails its CRC32C check (stored "
                                                f"{entry.crc32c:#010x}, computed {actual:#010x}); the data file is "
                                                "corrupted, re-download the checkpoint")
            array = np.frombuffer(raw, dtype=dtype).reshape(entry.shape)
            if entry.dtype == _DT_BFLOAT16:
                array = (array.astype(np.uint32) << np.uint32(16)).view(np.float32)
            tensors[name] = array.astype(array.dtype.newbyteorder("="), copy=True)
    finally:
        for _, handle, _ in handles.values():
            handle.close()  # type: ignore[attr-defined]
    logger.debug("read %d tensors from %s", len(tensors), prefix)
    return tensors

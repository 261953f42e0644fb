"""Safetensors files, read and written a piece of a tensor at a time (the format in one module).

The format (https://github.com/huggingface/safetensors):

    [8 bytes]  N, the header length, unsigned little-endian
    [N bytes]  JSON: {name: {"dtype": "BF16", "shape": [r, c], "data_offsets": [begin, end]},
                      "__metadata__": {str: str}}, may be padded with spaces
    [rest]     the tensors' bytes, little-endian, row-major; offsets are relative to here

Readers and writers here mirror each other. Why not ``safe_open``/``save_file``: ``save_file``
needs every tensor of a file in memory at once, and ``safe_open`` maps the file, so every page a
process reads stays in its resident set until the file is closed (a 5 GB shard read through is
5 GB of RSS). Reading with ``pread`` into a buffer of one chunk, and writing at known offsets,
keeps the peak at a few chunks whatever the shard or model size (``benchmarks/diff_memory.py``
measures it). The tests read every file written here with the safetensors library itself.

- ``read_header(path)`` parses and checks a header; a file shorter than its header says is a
  ``TruncatedFileError``.
- ``ModelFiles(folder)`` indexes the weights of an HF folder (``model.safetensors`` or
  ``model.safetensors.index.json`` + shards): every tensor's file, dtype, shape and offsets.
- ``read_elements(fd, info, start, count)`` reads elements ``[start, start + count)`` of a tensor.
- ``ReservedShardWriter`` writes a file whose tensors are only decided while it is written:
  the header space is reserved for the largest header it could need, tensors are appended (or
  rolled back), and the real header, padded with spaces, goes in at the end.
- ``preallocated_file(path, header)`` makes a file of known header and size for ``pwrite``.
"""

from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from cama.errors import FormatError
from cama.publish.errors import MissingFileError, TruncatedFileError

MAX_HEADER_BYTES = 100_000_000  # the safetensors library refuses larger headers too
INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"

# safetensors dtype code -> (torch dtype name, bytes per element, is floating point)
DTYPES: dict[str, tuple[str, int, bool]] = {
    "F64": ("float64", 8, True),
    "F32": ("float32", 4, True),
    "F16": ("float16", 2, True),
    "BF16": ("bfloat16", 2, True),
    "F8_E4M3": ("float8_e4m3fn", 1, False),  # no arithmetic in a diff: travels whole when changed
    "F8_E5M2": ("float8_e5m2", 1, False),
    "I64": ("int64", 8, False),
    "I32": ("int32", 4, False),
    "I16": ("int16", 2, False),
    "I8": ("int8", 1, False),
    "U8": ("uint8", 1, False),
    "BOOL": ("bool", 1, False),
}
# the same-width integer dtype whose bits a float compares by (NaN and -0.0 compare as bits)
BITS = {"F64": "int64", "F32": "int32", "F16": "int16", "BF16": "int16"}
CODE_OF = {name: code for code, (name, _, _) in DTYPES.items()}


def torch_dtype(code: str):
    import torch

    return getattr(torch, DTYPES[code][0])


def itemsize(code: str) -> int:
    return DTYPES[code][1]


def is_float(code: str) -> bool:
    return DTYPES[code][2]


def parse_size(text: str | int) -> int:
    """``"500MB"``, ``"2GB"``, ``"1.5GiB"`` or a number of bytes -> bytes (decimal units, as transformers)."""
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*([0-9.]+)\s*([KMGT]?)(i?)B?\s*", str(text), re.IGNORECASE)
    if not m:
        raise ValueError(f"not a size: {text!r} (e.g. 500MB, 2GB)")
    base = 1024 if m.group(3) else 1000
    return int(float(m.group(1)) * base ** "_KMGT".index(m.group(2).upper() or "_"))


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lives: ``begin``/``end`` are absolute offsets in ``file``."""

    name: str
    dtype: str  # safetensors code, e.g. "BF16"
    shape: tuple[int, ...]
    file: Path
    begin: int
    end: int

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        return self.end - self.begin


@dataclass(frozen=True)
class Header:
    raw: bytes  # the N header bytes exactly as in the file (padding included)
    tensors: dict[str, TensorInfo]  # in data order
    metadata: dict[str, str]
    data_start: int  # 8 + N
    size: int  # the file's size on disk


def read_header(path: str | os.PathLike) -> Header:
    """Parse and check a safetensors header. Offsets must tile the data region exactly."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise MissingFileError(f"{path}: no such file") from None
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise TruncatedFileError(f"{path}: {size} bytes, too short for a safetensors header")
        (n,) = struct.unpack("<Q", head)
        if n > MAX_HEADER_BYTES:
            raise FormatError(f"{path}: header length {n} is not plausible; not a safetensors file?")
        if 8 + n > size:
            raise TruncatedFileError(f"{path}: header of {n} bytes, but the file has only {size} bytes")
        raw = f.read(n)
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError(f"{path}: the safetensors header is not valid JSON ({e})") from None
    if not isinstance(doc, dict):
        raise FormatError(f"{path}: the safetensors header is not a JSON object")
    metadata = doc.pop("__metadata__", None) or {}
    tensors = []
    for name, entry in doc.items():
        try:
            dtype, shape, (b, e) = entry["dtype"], tuple(int(d) for d in entry["shape"]), entry["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise FormatError(f"{path}: tensor {name!r}: malformed header entry {entry!r}") from None
        if dtype not in DTYPES:
            raise FormatError(f"{path}: tensor {name!r}: unsupported dtype {dtype!r}")
        info = TensorInfo(name, dtype, shape, path, 8 + n + b, 8 + n + e)
        if info.nbytes != info.numel * itemsize(dtype) or b < 0:
            raise FormatError(f"{path}: tensor {name!r}: offsets {b}..{e} do not fit {dtype} {list(shape)}")
        tensors.append(info)
    tensors.sort(key=lambda t: (t.begin, t.end))
    pos = 8 + n
    for t in tensors:
        if t.begin != pos:
            raise FormatError(f"{path}: tensor {t.name!r} starts at {t.begin - 8 - n}, expected {pos - 8 - n} (gap or overlap)")
        pos = t.end
    if pos > size:
        raise TruncatedFileError(f"{path}: the header says {pos} bytes, the file has {size}: truncated")
    if pos < size:
        raise FormatError(f"{path}: {size - pos} bytes after the last tensor; not a safetensors file?")
    return Header(raw, {t.name: t for t in tensors}, metadata, 8 + n, size)


class ModelFiles:
    """The safetensors weights of an HF model folder, indexed by tensor name.

    Reads only headers. ``tensors`` is in file order, then data order: the order in which
    reading the folder is sequential.
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise MissingFileError(f"{self.folder}: no such model folder")
        index = self.folder / INDEX_NAME
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise FormatError(f"{index}: not a safetensors index ({e})") from None
            self.files = sorted(set(weight_map.values()))
        elif (self.folder / SINGLE_NAME).is_file():
            weight_map, self.files = None, [SINGLE_NAME]
        else:
            others = sorted(p.name for p in self.folder.glob("*.bin")) + sorted(p.name for p in self.folder.glob("*.pt"))
            hint = f" (found {', '.join(others)}: convert them with save_pretrained(safe_serialization=True))" if others else ""
            raise MissingFileError(f"{self.folder}: no {SINGLE_NAME} or {INDEX_NAME}{hint}")
        self.headers: dict[str, Header] = {}
        self.tensors: dict[str, TensorInfo] = {}
        for name in self.files:
            header = read_header(self.folder / name)
            self.headers[name] = header
            for t in header.tensors.values():
                if t.name in self.tensors:
                    raise FormatError(f"{self.folder}: tensor {t.name!r} is in both {self.tensors[t.name].file.name} and {name}")
                self.tensors[t.name] = t
        if weight_map is not None:
            for tname, fname in weight_map.items():
                if tname not in self.tensors:
                    raise MissingFileError(f"{index}: tensor {tname!r} is listed in {fname} but no shard holds it")
                if self.tensors[tname].file.name != fname:
                    raise FormatError(f"{index}: tensor {tname!r} is listed in {fname} but is in {self.tensors[tname].file.name}")
        config = self.folder / "config.json"
        self.config: dict = json.loads(config.read_text()) if config.is_file() else {}

    @property
    def weight_files(self) -> list[str]:
        names = list(self.files)
        if (self.folder / INDEX_NAME).is_file():
            names.append(INDEX_NAME)
        return names

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tensors.values())


def read_elements(fd: int, info: TensorInfo, start: int, count: int, out=None):
    """Elements ``[start, start + count)`` of ``info`` (flattened, row-major) as a 1-D torch tensor.

    ``out``: a uint8 tensor of at least ``count × itemsize`` bytes to read into (reused buffers
    spare the allocator and the page faults of a fresh buffer per chunk).
    """
    import torch

    size = itemsize(info.dtype)
    buf = torch.empty(count * size, dtype=torch.uint8) if out is None else out[: count * size]
    view = memoryview(buf.numpy())
    offset, got = info.begin + start * size, 0
    while got < len(view):
        n = os.preadv(fd, [view[got:]], offset + got)
        if n == 0:
            raise TruncatedFileError(f"{info.file}: tensor {info.name!r} ends early (file truncated while reading?)")
        got += n
    return buf.view(torch_dtype(info.dtype))


def tensor_bytes(t) -> memoryview:
    """The raw little-endian bytes of a contiguous torch tensor, without a copy."""
    import torch

    return memoryview(t.contiguous().view(torch.uint8).numpy())


def pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    done = 0
    while done < len(data):
        done += os.pwrite(fd, data[done:], offset + done)


def encode_header(entries: dict[str, dict], metadata: dict[str, str] | None, pad_to: int | None = None) -> bytes:
    """The JSON header, padded with spaces to a multiple of 8 (or to ``pad_to`` bytes)."""
    doc = {"__metadata__": dict(metadata)} if metadata else {}
    doc.update(entries)
    raw = json.dumps(doc, separators=(",", ":")).encode()
    target = pad_to if pad_to is not None else -(-len(raw) // 8) * 8
    if len(raw) > target:
        raise ValueError(f"header of {len(raw)} bytes does not fit the {target} reserved")
    return raw + b" " * (target - len(raw))


class ReservedShardWriter:
    """Append tensors to a safetensors file whose header is written last, into reserved space.

    ``reserve`` is every entry the file might hold, as ``(name, shape)`` (``None``: a 1-D
    tensor of a length not known yet); the space for the header is sized for all of them with
    the largest offsets possible. Each tensor is
    ``begin``-ed, its bytes appended (in any number of pieces), then ``end``-ed, or ``rollback``
    to drop it. ``close`` writes the header; the file is written to a temporary name and
    renamed, so an interrupted writer leaves nothing that looks complete.
    """

    def __init__(self, path: str | os.PathLike, reserve: list[tuple[str, tuple | None]], metadata: dict[str, str]):
        self.path = Path(path)
        self.metadata = metadata
        big = 10**16  # longer than any offset a file can have
        longest = max(DTYPES, key=len)
        worst = {
            name: {"dtype": longest, "shape": [big] if shape is None else list(shape), "data_offsets": [big, big]}
            for name, shape in reserve
        }
        self.header_len = len(encode_header(worst, metadata))
        self.tmp = self.path.with_name(f"{self.path.name}.tmp-{os.getpid()}")
        self.fd = os.open(self.tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        self.data_start = 8 + self.header_len
        self.pos = 0  # relative to data_start
        self.entries: dict[str, dict] = {}
        self._open: tuple[str, str, tuple[int, ...], int] | None = None

    def begin(self, name: str, dtype: str, shape: tuple[int, ...]) -> None:
        assert self._open is None, "a tensor is already open"
        self._open = (name, dtype, tuple(shape), self.pos)

    def reserve(self, n: int) -> int:
        """Room for ``n`` more bytes of the open tensor; returns the file offset to ``pwrite`` them at."""
        offset = self.data_start + self.pos
        self.pos += n
        return offset

    def write(self, data: memoryview) -> None:
        pwrite_all(self.fd, data, self.reserve(len(data)))

    def end(self) -> None:
        name, dtype, shape, start = self._open
        numel = 1
        for d in shape:
            numel *= d
        if self.pos - start != numel * itemsize(dtype):
            raise FormatError(f"{self.path}: tensor {name!r}: wrote {self.pos - start} bytes, expected {numel * itemsize(dtype)}")
        self.entries[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [start, self.pos]}
        self._open = None

    def rollback(self) -> None:
        """Forget the open tensor; the next one is written over its bytes."""
        self.pos = self._open[3]
        self._open = None

    def mark(self) -> int:
        return self.pos

    def rollback_to(self, mark: int) -> None:
        """Forget every tensor written since ``mark()`` returned ``mark``."""
        assert self._open is None
        self.entries = {k: v for k, v in self.entries.items() if v["data_offsets"][0] < mark}
        self.pos = mark

    def close(self) -> None:
        header = encode_header(self.entries, self.metadata, pad_to=self.header_len)
        os.ftruncate(self.fd, self.data_start + self.pos)
        pwrite_all(self.fd, memoryview(struct.pack("<Q", len(header)) + header), 0)
        os.close(self.fd)
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        os.close(self.fd)
        self.tmp.unlink(missing_ok=True)


def preallocated_file(path: str | os.PathLike, header_raw: bytes, data_bytes: int) -> int:
    """Create ``path`` with this header and room for ``data_bytes``; return an fd for ``pwrite``."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    pwrite_all(fd, memoryview(struct.pack("<Q", len(header_raw)) + header_raw), 0)
    os.ftruncate(fd, 8 + len(header_raw) + data_bytes)
    return fd

"""``cama recover``: base + diff -> the tuned model, bit for bit, in bounded memory.

The order of checks is the order of what can be wrong, cheapest first, and all of them come
before the output folder exists:

1. the diff folder against its manifest: every shard present, whole (``TruncatedFileError``) and
   holding exactly the tensors the manifest lists (``ManifestMismatchError``); the config and
   tokenizer files present (``MissingFileError``) and unchanged;
2. the base against the fingerprint, first by names, dtypes and shapes, then by the sha256 of
   every tensor (``WrongBaseError`` names the first differing tensor and what it likely means).

Then each tensor is rebuilt a chunk at a time and written at its offset in shards that carry
the tuned model's own headers, so the files come out byte-identical to the tuned model's. The
diff's bytes are hashed as they are read (a flipped byte: ``DiffIntegrityError`` naming the
tensor) and every rebuilt tensor is hashed against the tuned tensor's sha256. Everything goes to
``<out>.tmp-<pid>``, renamed to ``out`` only when every tensor verified.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import shutil
import time
from pathlib import Path

from cama.errors import CamaError
from cama.publish.diff import (
    CHUNK_ELEMS,
    RECOVER_LANES,
    THREADS_HELP,
    _Arith,
    _Reader,
    _rows_elems,
    peak_rss_mb,
)
from cama.publish.errors import DiffIntegrityError, ManifestMismatchError, WrongBaseError
from cama.publish.manifest import MANIFEST, check_files, load_manifest
from cama.publish.safetensors_io import (
    Header,
    ModelFiles,
    TensorInfo,
    itemsize,
    preallocated_file,
    pwrite_all,
    read_elements,
    read_header,
    tensor_bytes,
    torch_dtype,
)

log = logging.getLogger(__name__)

CAUSES = {
    "names": "another conversion script (tensor names differ from those the diff was made against)",
    "dtype": "a fp16/bf16/fp32 copy of the base (same tensors, another dtype); use the original precision",
    "shape": "another model or release (shapes differ)",
    "bytes": (
        "another release of the base weights, or another conversion (e.g. one that permutes the q/k rows for "
        "rotary embeddings differently); get the exact base the diff names"
    ),
}


def check_diff_shards(diff_dir: Path, manifest: dict) -> dict[str, Header]:
    """Every diff shard is whole and holds exactly the tensors the manifest says, with their shapes."""
    expected: dict[str, dict[str, tuple[str, tuple]]] = {name: {} for name in manifest["diff_files"]}
    for e in manifest["tensors"]:
        if e["kind"] not in ("diff", "full"):
            continue
        f = e["diff"]["file"]
        if f not in expected:
            raise ManifestMismatchError(f"{diff_dir / MANIFEST}: tensor {e['name']!r} is in {f}, which diff_files does not list")
        rows = e.get("base_rows")
        shape = (rows, *e["shape"][1:]) if rows is not None else tuple(e["shape"])
        expected[f][e["name"]] = (e["diff"]["dtype"], tuple(shape))
        if "new_rows" in e:
            expected[f][f"{e['name']}:new_rows"] = (e["dtype"], (e["shape"][0] - rows, *e["shape"][1:]))
        if "fix" in e:
            expected[f][f"{e['name']}:fix_index"] = (e["fix"]["index_dtype"], (e["fix"]["count"],))
            expected[f][f"{e['name']}:fix_value"] = (e["dtype"], (e["fix"]["count"],))
    headers = {}
    for name, want in expected.items():
        path = diff_dir / name
        if not path.is_file():
            raise ManifestMismatchError(f"{path}: missing, but {MANIFEST} lists it; the download is incomplete")
        header = read_header(path)  # a short file: TruncatedFileError
        have = {n: (t.dtype, t.shape) for n, t in header.tensors.items()}
        for tname in sorted(set(want) | set(have)):
            if tname not in have:
                raise ManifestMismatchError(f"{path}: has no tensor {tname!r}, which {MANIFEST} puts there")
            if tname not in want:
                raise ManifestMismatchError(f"{path}: tensor {tname!r} is not in {MANIFEST}")
            if have[tname] != want[tname]:
                raise ManifestMismatchError(
                    f"{path}: tensor {tname!r} is {have[tname][0]} {list(have[tname][1])}, "
                    f"{MANIFEST} says {want[tname][0]} {list(want[tname][1])}"
                )
        if header.size != manifest["diff_files"][name]["size"]:
            raise ManifestMismatchError(f"{path}: {header.size} bytes, {MANIFEST} says {manifest['diff_files'][name]['size']}")
        headers[name] = header
    return headers


def check_base(base: ModelFiles, manifest: dict, chunk: int = CHUNK_ELEMS) -> None:
    """The base is the one the diff was made against: names, dtypes, shapes, then every tensor's sha256."""
    want = manifest["base"]["tensors"]
    missing = [n for n in want if n not in base.tensors]
    if missing:
        extra = [n for n in base.tensors if n not in want]
        seen = f"; the base has e.g. {extra[0]!r}" if extra else ""
        raise WrongBaseError(
            f"{base.folder}: has no tensor {missing[0]!r} ({len(missing)} of {len(want)} missing{seen}). "
            f"Likely cause: {CAUSES['names']}"
        )
    for name, w in want.items():
        t = base.tensors[name]
        if t.dtype != w["dtype"]:
            raise WrongBaseError(
                f"{base.folder}: tensor {name!r} is {t.dtype}, the diff was made against {w['dtype']}. Likely cause: {CAUSES['dtype']}"
            )
        if list(t.shape) != w["shape"]:
            raise WrongBaseError(
                f"{base.folder}: tensor {name!r} is {list(t.shape)}, the diff was made against {w['shape']}. "
                f"Likely cause: {CAUSES['shape']}"
            )
    reader = _Reader(chunk)
    try:
        for name, w in want.items():
            t, h = base.tensors[name], hashlib.sha256()
            reader.stream(t, 0, t.numel, lambda _, data, h=h: h.update(data))
            if h.hexdigest() != w["sha256"]:
                raise WrongBaseError(
                    f"{base.folder}: tensor {name!r} ({t.file.name}) differs from the base the diff was made against "
                    f"(sha256 {h.hexdigest()[:12]}…, expected {w['sha256'][:12]}…). Likely cause: {CAUSES['bytes']}"
                )
    finally:
        reader.close()


def recover(
    *,
    base: str | os.PathLike,
    diff: str | os.PathLike,
    out: str | os.PathLike,
    chunk_elems: int = CHUNK_ELEMS,
    threads: int = 3,
) -> dict:
    """Rebuild the tuned model folder ``out`` from ``base`` and the diff folder; return stats.

    ``threads``: 1 does everything in this thread; 2 or 3 hash and write in 1 or 2 more; 4 or 5
    add a thread that reads ahead, with 2 or 3 lanes (see ``cama.publish.diff._Reader``).
    """
    import torch

    t0 = time.perf_counter()
    diff_dir, out = Path(diff), Path(out)
    manifest = load_manifest(diff_dir)
    diff_headers = check_diff_shards(diff_dir, manifest)
    check_files(diff_dir, manifest)
    base_m = ModelFiles(base)
    log.info("checking the base %s against the diff's fingerprint (%d tensors)", base_m.folder, len(manifest["base"]["tensors"]))
    check_base(base_m, manifest, chunk_elems)
    if out.exists() and any(out.iterdir()):
        raise CamaError(f"{out}: exists and is not empty; recover into a new folder")

    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    reader, out_fds = _Reader(chunk_elems, threads), {}
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # see _Reader
    try:
        for name, meta in manifest["tuned"]["weight_files"].items():
            raw = meta["header"].encode("utf-8")
            out_fds[name] = preallocated_file(tmp / name, raw, meta["size"] - 8 - len(raw))
        # where each tensor goes: the tuned headers, as the manifest kept them
        layout = {}
        for name, meta in manifest["tuned"]["weight_files"].items():
            raw = meta["header"].encode("utf-8")
            tmp_header = read_header(tmp / name)
            assert tmp_header.raw == raw
            layout.update(tmp_header.tensors)
        total = sum(t.nbytes for t in layout.values())
        from cama.logs import progress

        bar = progress(total=total, unit="B", unit_scale=True, desc="recover")
        with torch.inference_mode():
            for e in manifest["tensors"]:
                dest = layout.get(e["name"])
                if dest is None or dest.file.name != e["file"] or list(dest.shape) != e["shape"] or dest.dtype != e["dtype"]:
                    raise ManifestMismatchError(f"{diff_dir / MANIFEST}: tensor {e['name']!r} does not match the tuned header of {e['file']}")
                _rebuild(e, dest, out_fds[e["file"]], base_m, diff_headers, reader, chunk_elems)
                bar.update(dest.nbytes)
        bar.close()
        for fd in out_fds.values():
            os.fsync(fd)
            os.close(fd)
        out_fds = {}
        for name in manifest["files"]:
            shutil.copyfile(diff_dir / name, tmp / name)
        for f in tmp.iterdir():
            f.chmod(0o644)
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(tmp, out)
    except BaseException:
        for fd in out_fds.values():
            os.close(fd)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        reader.close()
        torch.set_num_threads(torch_threads)
    stats = {
        "tensors": len(manifest["tensors"]),
        "verified": len(manifest["tensors"]),
        "bytes": total,
        "seconds": round(time.perf_counter() - t0, 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    log.info(
        "recovered %s: %d tensors verified against their sha256, %.1f MB in %.1f s, peak RSS %.0f MB",
        out, stats["verified"], total / 1e6, stats["seconds"], stats["peak_rss_mb"],
    )
    return stats


def _rebuild(e: dict, dest: TensorInfo, fd: int, base: ModelFiles, diff_headers: dict, reader: _Reader, chunk: int) -> None:
    """Write one tuned tensor at ``dest`` and check its sha256; check the diff's bytes on the way."""

    th = hashlib.sha256()
    size = itemsize(dest.dtype)

    def copy(src: TensorInfo, offset: int, *hashes) -> None:
        """Stream ``src`` to ``dest`` from element ``offset``, hashing it into ``hashes``."""
        fns = [lambda _, data, h=h: h.update(data) for h in hashes]
        reader.stream(src, 0, src.numel, *fns, lambda start, data: pwrite_all(fd, data, dest.begin + (offset + start) * size))

    if e["kind"] == "same":
        copy(base.tensors[e["base"]], 0, th)
    elif e["kind"] == "full":
        d, dh = _diff_tensor(diff_headers, e, e["name"]), hashlib.sha256()
        copy(d, 0, dh, th)
        _check(dh, e["diff"]["sha256"], f"diff shard {d.file.name}, tensor {e['name']!r}")
    else:
        T = torch_dtype(e["dtype"])
        arith = _Arith(reader, e["arithmetic"])
        b = base.tensors[e["base"]]
        d = _diff_tensor(diff_headers, e, e["name"])
        overlap = _rows_elems(dest, e.get("base_rows"))
        fixes = _Fixes(reader, diff_headers, e, chunk) if "fix" in e else None
        dh = hashlib.sha256()
        lanes = reader.lanes(RECOVER_LANES)
        for s, start, n, (dv, bv) in reader.chunks(0, overlap, d, b):
            reader.later(s, dh.update, tensor_bytes(dv), lane=lanes.get("diff"))
            r = reader.buffer(f"r{s}", T, n)
            arith("add", dv, bv, r)  # cast_T(diff + base), as make computed it
            if fixes is not None:
                idx, val = fixes.until(start + n)
                if idx.numel():
                    if int(idx.min()) < start or int(idx.max()) >= start + n:  # a damaged index
                        reader.wait()
                        fixes.damaged()
                    r[idx.long() - start] = val
            v = tensor_bytes(r)
            reader.later(s, th.update, v, lane=lanes.get("result"))
            reader.later(s, pwrite_all, fd, v, dest.begin + start * size, lane=lanes.get("write"))
        reader.wait()
        _check(dh, e["diff"]["sha256"], f"diff shard {d.file.name}, tensor {e['name']!r}")
        if fixes is not None:
            fixes.check()
        if "new_rows" in e:
            nr, nh = _diff_tensor(diff_headers, e, f"{e['name']}:new_rows"), hashlib.sha256()
            copy(nr, overlap, nh, th)
            _check(nh, e["new_rows"]["sha256"], f"diff shard {nr.file.name}, tensor {nr.name!r}")
    if th.hexdigest() != e["sha256"]:
        raise DiffIntegrityError(
            f"recovered tensor {e['name']!r} ({e['file']}) does not match the tuned model's sha256 "
            f"({th.hexdigest()[:12]}…, expected {e['sha256'][:12]}…); the diff or the base changed while reading?"
        )


class _Fixes:
    """A tensor's fixes (sorted element indices and their tuned values), read a block at a time
    as the chunks reach them, so that memory stays bounded however many there are."""

    def __init__(self, reader: _Reader, headers: dict[str, Header], e: dict, chunk: int):
        import torch

        self.reader, self.e, self.chunk = reader, e, chunk
        self.fi = _diff_tensor(headers, e, f"{e['name']}:fix_index")
        self.fv = _diff_tensor(headers, e, f"{e['name']}:fix_value")
        self.hi, self.hv = hashlib.sha256(), hashlib.sha256()
        self.next = 0
        self.idx = torch.empty(0, dtype=torch_dtype(self.fi.dtype))
        self.val = torch.empty(0, dtype=torch_dtype(self.fv.dtype))

    def until(self, end: int):
        """The fixes with index < ``end`` not taken yet."""
        import torch

        while self.next < self.fi.numel and (self.idx.numel() == 0 or self.idx[-1] < end):
            k = min(self.chunk, self.fi.numel - self.next)
            i = read_elements(self.reader.fd(self.fi.file), self.fi, self.next, k)
            v = read_elements(self.reader.fd(self.fv.file), self.fv, self.next, k)
            self.hi.update(tensor_bytes(i))
            self.hv.update(tensor_bytes(v))
            self.idx, self.val = torch.cat([self.idx, i]), torch.cat([self.val, v])
            self.next += k
        cut = int(torch.searchsorted(self.idx, torch.tensor([end], dtype=self.idx.dtype)))
        out = self.idx[:cut], self.val[:cut]
        self.idx, self.val = self.idx[cut:], self.val[cut:]
        return out

    def damaged(self) -> None:
        raise DiffIntegrityError(
            f"diff shard {self.fi.file.name}, tensor {self.fi.name!r}: indices out of order or range; "
            "the file is corrupt, download it again"
        )

    def check(self) -> None:
        if self.next != self.fi.numel or self.idx.numel():
            self.damaged()
        _check(self.hi, self.e["fix"]["index_sha256"], f"diff shard {self.fi.file.name}, tensor {self.fi.name!r}")
        _check(self.hv, self.e["fix"]["value_sha256"], f"diff shard {self.fv.file.name}, tensor {self.fv.name!r}")


def _diff_tensor(headers: dict[str, Header], e: dict, name: str) -> TensorInfo:
    return headers[e["diff"]["file"]].tensors[name]


def _check(h, want: str, what: str) -> None:
    if h.hexdigest() != want:
        raise DiffIntegrityError(f"{what}: sha256 {h.hexdigest()[:12]}…, the manifest says {want[:12]}…; the file is corrupt, download it again")


# ----------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base", required=True, help="the base model folder the diff was made against")
    parser.add_argument("--diff", required=True, help="the diff folder (manifest.json + diff shards)")
    parser.add_argument("--out", required=True, help="the tuned model folder to write (must not exist, or be empty)")
    parser.add_argument("--chunk-elems", type=int, default=CHUNK_ELEMS, help="elements per chunk (memory ~ 40 bytes each)")
    parser.add_argument("--threads", type=int, default=3, choices=range(1, 6), help=THREADS_HELP)


def run(args: argparse.Namespace) -> int:
    recover(base=args.base, diff=args.diff, out=args.out, chunk_elems=args.chunk_elems, threads=args.threads)
    return 0


__all__ = ["check_base", "check_diff_shards", "recover"]

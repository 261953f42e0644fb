"""``cama diff make``: tuned − base, streamed tensor by tensor, verified to recover bit-exactly.

CaMA could not publish its weights, so it published ``tuned − base`` in fp32 and a recovery
script that loaded both 13B models whole (~100 GB of RAM) and checked one float, the sum of all
parameters. Here:

- Both models are read a chunk of a tensor at a time (``chunk_elems`` elements, 4M by default)
  and the diff is written as it is computed, so memory does not grow with the model or its
  shards: 342 MB peak for the 2.2 GB TinyLlama shape, against 10.8 GB for a stanford_alpaca-style
  weight_diff in the same run (``benchmarks/diff_memory.py``).
- Any shard layout on either side: tensors are matched by name, not by file. A vocabulary that
  grew in tuning diffs the shared rows and carries the new rows whole; a tuned ``lm_head`` over a
  tied base diffs against the base's embedding; a tensor only the tuned model has travels whole;
  a base-only tensor is listed and skipped; a tensor equal to the base's, bit for bit, costs
  nothing.
- The diff dtype is a choice (``auto``: the tuned tensor's dtype). Whatever it is, ``make``
  replays recovery's arithmetic and stores the elements it would get wrong (``fix``), so
  recovery is bit-exact in the tuned dtype; a tensor whose fixes would outweigh it travels whole.
- ``manifest.json`` (``cama.publish.manifest``) holds the base fingerprint, every tensor's sha256
  before and after, the tuned shard headers, the tokenizer hash and the resolved config.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import resource
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cama.errors import ConfigError
from cama.publish.manifest import (
    FORMAT,
    RECIPE,
    VERSION,
    other_files,
    tokenizer_sha256,
    write_manifest,
)
from cama.publish.safetensors_io import (
    BITS,
    DTYPES,
    ModelFiles,
    ReservedShardWriter,
    TensorInfo,
    is_float,
    itemsize,
    parse_size,
    pwrite_all,
    read_elements,
    tensor_bytes,
    torch_dtype,
)

log = logging.getLogger(__name__)

DIFF_DTYPES = {"auto": None, "float32": "F32", "bfloat16": "BF16", "float16": "F16"}
CHUNK_ELEMS = 1 << 22
THREADS_HELP = "1: all in one thread; 2, 3: hash and write in 1 or 2 more; 4, 5: in 2 or 3 more, and one reads ahead (default 3)"
# Which thread hashes or writes each stream of make's chunk loop, by the number of workers
# (None: the main thread, in order). With one worker (``--threads 2``), the main thread hashes
# the base itself: on the TinyLlama-shape benchmark (benchmarks/diff_memory.py), the worker alone
# had 6.7-8.0 s of CPU (three hashes and the write) while the main thread had 4.2-4.5 s and
# waited; this way the busier thread has 5.7-6.9 s, the total unchanged. With three (``--threads
# 5``, beside a thread that reads ahead), the write has a lane of its own: with two, the lane that
# hashed the diff and wrote it was the busiest thread (4.3-5.5 s; the 2.3 GB of ``pwrite`` take
# 2.4-2.8 s of it).
LANES = {
    1: {"tuned": 0, "base": None, "diff": 0, "write": 0},
    2: {"tuned": 0, "base": 0, "diff": 1, "write": 1},
    3: {"tuned": 0, "base": 0, "diff": 1, "write": 2},
}
# The same for recover's chunk loop: the diff's hash on the first worker, the recovered tensor's
# hash and write on the second (with a third, the write on it); with one worker the main thread
# hashes the diff itself.
RECOVER_LANES = {
    1: {"diff": None, "result": 0, "write": 0},
    2: {"diff": 0, "result": 1, "write": 1},
    3: {"diff": 0, "result": 1, "write": 2},
}
# A tied base stores one matrix for both; a tuned model that unties them diffs against it.
TIED_ALIASES = {"lm_head.weight": "model.embed_tokens.weight"}


@dataclass
class Planned:
    """One tuned tensor, and how it will travel."""

    tuned: TensorInfo
    kind: str  # "diff" or "full" (either may turn out "same")
    base: TensorInfo | None = None
    base_rows: int | None = None  # set when the row counts differ
    diff_dtype: str | None = None
    arithmetic: str | None = None
    shard: int = 0


def plan_tensors(base: ModelFiles, tuned: ModelFiles, diff_dtype: str | None) -> tuple[list[Planned], list[str]]:
    """How each tuned tensor travels, and which base tensors the tuned model lacks."""
    plans, used = [], set()
    for t in tuned.tensors.values():
        b = base.tensors.get(t.name)
        if b is None and t.name in TIED_ALIASES:
            b = base.tensors.get(TIED_ALIASES[t.name])
        p = Planned(tuned=t, kind="full", base=b)
        if b is not None:
            rows_differ = len(b.shape) == len(t.shape) >= 1 and b.shape[1:] == t.shape[1:] and b.shape[0] != t.shape[0]
            if is_float(t.dtype) and is_float(b.dtype) and (b.shape == t.shape or rows_differ):
                p.kind = "diff"
                p.diff_dtype = diff_dtype or t.dtype
                p.base_rows = min(b.shape[0], t.shape[0]) if rows_differ else None
                p.arithmetic = "F64" if "F64" in (t.dtype, b.dtype, p.diff_dtype) else "F32"
            elif not (b.shape == t.shape and b.dtype == t.dtype):
                p.base = None  # nothing to share: travels whole
        if p.base is not None:
            used.add(p.base.name)
        plans.append(p)
    unused = [n for n in base.tensors if n not in used]
    return plans, unused


def assign_shards(plans: list[Planned], max_bytes: int) -> int:
    """Consecutive tensors into shards of at most ``max_bytes`` of planned data; returns the count."""
    shard, size = 0, 0
    for p in plans:
        n = p.tuned.numel * itemsize(p.diff_dtype or p.tuned.dtype)
        if size and size + n > max_bytes:
            shard, size = shard + 1, 0
        p.shard, size = shard, size + n
    return shard + 1


def shard_name(i: int, n: int) -> str:
    return f"diff-{i + 1:05d}-of-{n:05d}.safetensors"


class _Reader:
    """What the chunk loops share: open file descriptors, reused chunk buffers, and worker threads.

    - The buffers are reused for every chunk of every tensor: no allocation (and no page faults
      on fresh memory) in the inner loop. Measured on this project's CPU machine: 0.56 s of CPU
      per 256 MB of bf16 for the make step's arithmetic, against 1.71 s allocating per operation.
    - With ``threads`` > 1, worker threads ("lanes", ``threads - 1`` of them, 3 at most) hash
      and write while the main thread reads and computes (hashlib, ``pread``/``pwrite`` and
      torch all release the GIL); a hash object always goes to the same lane, so its updates stay in order. Buffers
      come in ``SLOTS`` sets, chunk ``k`` using set ``k % SLOTS``, and a set is reused only when
      the workers are done with it: the lanes may fall behind by two chunks before the main
      thread waits. On the benchmark's make (``--threads 2``, six alternating runs each, load
      average 1.6-3.6), three sets took 5.6-10.2 s (mean 8.4) against 5.7-13.5 s (mean 10.0)
      with two.
    - With ``threads`` >= 4, one worker reads ahead (:meth:`chunks`): chunk ``k + 1`` is read
      while the main thread computes chunk ``k``; the other ``threads - 2`` are lanes (4: two,
      as with 3; 5: three, see ``LANES``). This is for machines with cores to spare: it moves
      work, it does not remove any. Per-thread CPU of the benchmark's make (TinyLlama shape,
      measured on the 2-core machine, load average 2-5): at ``--threads 3`` the busiest thread
      had 4.3-5.5 s (main 3.7-4.3); at ``--threads 5`` 3.1 s (main, ~1.5 s of it importing
      torch; lanes 2.8, 1.4, 2.4-2.8; the reader 0.7), the total unchanged (10.7-11.1 s). Wall
      time only follows where that many cores are free.
    - Torch's own intra-op threads stay at one: on the shared 2-core machine, 2 OpenMP threads
      tripled the CPU time of ``make`` (37.5 s against 16.0 s; they spin while waiting for a core).
    """

    SLOTS = 3

    def __init__(self, chunk: int = CHUNK_ELEMS, threads: int = 3):
        import threading
        from concurrent.futures import ThreadPoolExecutor

        self.chunk = chunk
        self.fds: dict[Path, int] = {}
        self.fd_lock = threading.Lock()  # the read-ahead worker opens files too
        self.buffers: dict[tuple[str, object], object] = {}
        self.ahead = ThreadPoolExecutor(1, thread_name_prefix="cama-read") if threads >= 4 else None
        lanes = threads - 1 - (self.ahead is not None)
        self.workers = [ThreadPoolExecutor(1, thread_name_prefix=f"cama-io{i}") for i in range(lanes)]
        self.pending: dict[int, list] = {s: [] for s in range(self.SLOTS)}

    def later(self, slot: int, fn, *args, lane: int | None = 0) -> None:
        """Run ``fn(*args)`` on worker ``lane`` (in order within a lane); now, in this thread,
        when ``lane`` is None or there are no workers."""
        if lane is None or not self.workers:
            fn(*args)
        else:
            self.pending[slot].append(self.workers[lane % len(self.workers)].submit(fn, *args))

    def lanes(self, table: dict[int, dict]) -> dict:
        """``table``'s row (``LANES``, ``RECOVER_LANES``) for this many workers; none: all inline."""
        return table[min(len(self.workers), 3)] if self.workers else {}

    def wait(self, slot: int | None = None) -> None:
        """Until the workers are done with the buffers of ``slot`` (all slots when None)."""
        for s in range(self.SLOTS) if slot is None else (slot,):
            jobs, self.pending[s] = self.pending[s], []
            for job in jobs:
                job.result()  # re-raises the worker's exception here

    def slot(self, k: int) -> int:
        """The buffer set of chunk ``k``, once the workers are done with it."""
        s = k % self.SLOTS
        self.wait(s)
        return s

    def fd(self, path: Path) -> int:
        with self.fd_lock:
            if path not in self.fds:
                self.fds[path] = os.open(path, os.O_RDONLY)
            return self.fds[path]

    def buffer(self, key: str, dtype, n: int):
        """The first ``n`` elements of the reused buffer ``key`` of ``dtype`` (torch dtype)."""
        import torch

        if (key, dtype) not in self.buffers:
            self.buffers[(key, dtype)] = torch.empty(self.chunk, dtype=dtype)
        return self.buffers[(key, dtype)][:n]

    def read(self, info: TensorInfo, start: int, n: int, key: str):
        """Elements ``[start, start + n)`` of ``info``, into the reused buffer ``key``."""
        import torch

        return read_elements(self.fd(info.file), info, start, n, out=self.buffer(key, torch.float64, n).view(torch.uint8))

    def chunks(self, begin: int, end: int, *infos: TensorInfo):
        """Elements ``[begin, end)`` of each of ``infos`` (tensors of as many elements or more), a
        chunk at a time: yields ``(slot, start, n, views)``, the views read into buffers of a set
        the workers are done with. With a read-ahead worker, chunk ``k + 1`` is read while the
        caller works on chunk ``k``."""
        starts = range(begin, end, self.chunk)

        def load(k: int):
            start, s = starts[k], self.slot(k)
            n = min(self.chunk, end - start)
            return s, start, n, [self.read(info, start, n, f"in{i}.{s}") for i, info in enumerate(infos)]

        if self.ahead is None:
            for k in range(len(starts)):
                yield load(k)
            return
        nxt = self.ahead.submit(load, 0) if starts else None
        try:
            for k in range(len(starts)):
                cur = nxt.result()  # re-raises the read's exception here
                nxt = self.ahead.submit(load, k + 1) if k + 1 < len(starts) else None
                yield cur
        finally:  # also when the caller stops early: no read left writing into a buffer
            if nxt is not None and not nxt.cancel():
                nxt.exception()  # waits for it; an error of its own matters less than the caller's

    def stream(self, info: TensorInfo, begin: int, end: int, *fns) -> None:
        """Read elements ``[begin, end)`` of ``info`` a chunk at a time; each ``fn(start, bytes)``
        runs on its own lane, in order."""
        for s, start, _, (view,) in self.chunks(begin, end, info):
            data = tensor_bytes(view)
            for lane, fn in enumerate(fns):
                self.later(s, fn, start, data, lane=lane)
        self.wait()

    def close(self) -> None:
        for s in self.pending:
            for job in self.pending[s]:
                job.cancel()
        for worker in [*self.workers, *([self.ahead] if self.ahead else [])]:
            worker.shutdown(wait=True)
        for fd in self.fds.values():
            os.close(fd)


def replay_dtypes(*codes: str) -> bool:
    """Whether torch's own op on these dtypes computes exactly as ``cast(float32(x) op float32(y))``
    (``float64`` for F64): all operands and the result in one dtype, and that dtype one that
    torch's CPU kernels compute in float32 (bf16, f16: each operand widened, one rounding at the
    end) or is float32 or float64 itself. ``tests/publish/test_diff.py`` checks the claim on every
    bf16 and f16 value, special values included. (float32's 24 bits of precision are at least
    2p + 2 for bf16's p = 8 and f16's p = 11, so rounding twice, to float32 then to the dtype,
    gives the correctly rounded result: a kernel that adds natively in bf16 or f16 gives the same
    bits, NaN payloads aside.)"""
    return len(set(codes)) == 1 and codes[0] in ("BF16", "F16", "F32", "F64")


class _Arith:
    """``cast_out(A(x) ± A(y))``, the one piece of arithmetic ``make`` and ``recover`` share.

    When :func:`replay_dtypes` holds, torch's op on the operands as they are, one pass with no
    temporary: make's subtraction and addition of a 4M-element bf16 chunk take 5.2 ms here
    (load average 4), against 13.8 ms widening each operand to float32 into a buffer, computing,
    and narrowing. Otherwise, explicitly: both operands widened to ``A`` in reused buffers,
    computed, narrowed into ``out``.
    """

    def __init__(self, reader: _Reader, arithmetic: str):
        self.reader, self.A = reader, torch_dtype(arithmetic)
        self.arithmetic = arithmetic

    def __call__(self, op: str, x, y, out, y_wide=None):
        """``out = cast(A(x) op A(y))`` for op ``"sub"`` or ``"add"``. ``y_wide``: ``A(y)`` if at
        hand; returns it (None on the one-pass path) for the next call with the same ``y``."""
        import torch

        fn = torch.sub if op == "sub" else torch.add
        codes = (_code(x.dtype), _code(y.dtype), _code(out.dtype))
        if replay_dtypes(*codes) and (codes[0] == "F64") == (self.arithmetic == "F64"):
            fn(x, y, out=out)
            return None
        n = x.numel()
        fa = self.reader.buffer("a", self.A, n)
        fa.copy_(x)
        if y_wide is None:
            y_wide = self.reader.buffer("b_A", self.A, n)
            y_wide.copy_(y)
        fn(fa, y_wide, out=fa)
        out.copy_(fa)
        return y_wide


def _code(dtype) -> str:
    from cama.publish.safetensors_io import CODE_OF

    return CODE_OF[str(dtype).removeprefix("torch.")]


def _rows_elems(info: TensorInfo, rows: int | None) -> int:
    """Elements in the first ``rows`` rows (all of them when ``rows`` is None)."""
    if rows is None:
        return info.numel
    return info.numel // info.shape[0] * rows


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_diff(
    *,
    base: str | os.PathLike,
    tuned: str | os.PathLike,
    out: str | os.PathLike,
    diff_dtype: str = "auto",
    max_shard_size: str | int = "2GB",
    chunk_elems: int = CHUNK_ELEMS,
    run_config: dict | None = None,
    threads: int = 3,
) -> dict:
    """Write the diff folder ``out`` (shards, manifest, the tuned folder's other files); return stats.

    ``threads``: 1 does everything in this thread; 2 or 3 hash and write in 1 or 2 more; 4 or 5
    add a thread that reads ahead, with 2 or 3 lanes (see ``_Reader``).
    """
    import torch

    if diff_dtype not in DIFF_DTYPES:
        raise ConfigError(f"publish.diff_dtype: {diff_dtype!r} is not one of {sorted(DIFF_DTYPES)}")
    t0 = time.perf_counter()
    base_m, tuned_m = ModelFiles(base), ModelFiles(tuned)
    files = other_files(tuned_m.folder, tuned_m.weight_files)
    plans, unused = plan_tensors(base_m, tuned_m, DIFF_DTYPES[diff_dtype])
    n_shards = assign_shards(plans, parse_size(max_shard_size))
    log.info(
        "diff %s (%d tensors, %.1f MB) - %s (%d tensors, %.1f MB) -> %s, %d shard(s), diff dtype %s",
        tuned_m.folder, len(tuned_m.tensors), tuned_m.nbytes / 1e6, base_m.folder, len(base_m.tensors),
        base_m.nbytes / 1e6, out, n_shards, diff_dtype,
    )

    out = Path(out)
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    reader = _Reader(chunk_elems, threads)
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # see _Reader
    writers: list[ReservedShardWriter] = []
    try:
        for i in range(n_shards):
            reserve = []
            for p in plans:
                if p.shard == i:
                    reserve += [(p.tuned.name, p.tuned.shape), (f"{p.tuned.name}:new_rows", p.tuned.shape)]
                    reserve += [(f"{p.tuned.name}:fix_index", None), (f"{p.tuned.name}:fix_value", None)]
            writers.append(ReservedShardWriter(tmp / shard_name(i, n_shards), reserve, {"format": "pt", "cama": FORMAT}))
        base_hash: dict[str, str] = {}
        entries = []
        from cama.logs import progress

        bar = progress(total=tuned_m.nbytes, unit="B", unit_scale=True, desc="diff")
        with torch.inference_mode():
            for p in plans:
                entries.append(_one_tensor(p, writers[p.shard], n_shards, reader, base_hash, chunk_elems, tmp))
                bar.update(p.tuned.nbytes)
            for name in unused:  # the rest of the fingerprint
                base_hash[name] = _hash_tensor(base_m.tensors[name], reader, chunk_elems)
        bar.close()
        for w in writers:
            w.close()
        writers = []
        for name in files:
            shutil.copyfile(tuned_m.folder / name, tmp / name)
        stats = _stats(entries, base_m, tuned_m, tmp, n_shards, t0)
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "recipe": RECIPE,
            "base": {
                "folder": base_m.folder.name,
                "tensors": {
                    n: {"dtype": t.dtype, "shape": list(t.shape), "sha256": base_hash[n]} for n, t in base_m.tensors.items()
                },
            },
            "tuned": {
                "folder": tuned_m.folder.name,
                "weight_files": {
                    f: {"header": h.raw.decode("utf-8"), "size": h.size} for f, h in tuned_m.headers.items()
                },
            },
            "files": files,
            "tokenizer_sha256": tokenizer_sha256(files),
            "diff_files": {shard_name(i, n_shards): {"size": (tmp / shard_name(i, n_shards)).stat().st_size} for i in range(n_shards)},
            "tensors": entries,
            "base_unused": unused,
            "config": {
                "diff_dtype": diff_dtype,
                "max_shard_size": max_shard_size,
                "chunk_elems": chunk_elems,
                "base": str(base),
                "tuned": str(tuned),
                "versions": _versions(),
                **(run_config or {}),
            },
            "stats": stats,
        }
        write_manifest(tmp, manifest)
        for f in tmp.iterdir():
            f.chmod(0o644)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        for w in writers:
            w.abort()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        reader.close()
        torch.set_num_threads(torch_threads)
    stats["seconds"] = round(time.perf_counter() - t0, 2)
    stats["peak_rss_mb"] = round(peak_rss_mb(), 1)
    log.info(
        "wrote %s: %s; %d elements fixed; %.1f MB of diff in %.1f s, peak RSS %.0f MB",
        out, stats["kinds"], stats["fixed_elements"], stats["diff_bytes"] / 1e6, stats["seconds"], stats["peak_rss_mb"],
    )
    return stats


def _one_tensor(p: Planned, w: ReservedShardWriter, n_shards: int, reader: _Reader, base_hash: dict, chunk: int, tmp: Path) -> dict:
    """Diff (or copy) one tuned tensor into ``w``; return its manifest entry."""
    t = p.tuned
    entry = {"name": t.name, "file": t.file.name, "dtype": t.dtype, "shape": list(t.shape)}
    mark = w.mark()
    if p.kind == "diff":
        done = _diff_tensor(p, w, reader, base_hash, chunk, tmp)
        if done is not None:
            entry.update(done)
            if entry["kind"] == "diff":
                entry["diff"]["file"] = shard_name(p.shard, n_shards)
            return entry
        w.rollback_to(mark)  # the fixes would outweigh the tensor: it travels whole
        log.info("%s: the %s diff needs fixes for most elements; the tensor travels whole", t.name, p.diff_dtype)
    th = hashlib.sha256()
    match = p.base is not None and p.base.shape == t.shape and p.base.dtype == t.dtype
    bh = hashlib.sha256() if match and p.base.name not in base_hash else None
    same = match
    w.begin(t.name, t.dtype, t.shape)
    for start in range(0, t.numel, chunk):
        n = min(chunk, t.numel - start)
        tv = reader.read(t, start, n, "t")
        th.update(tensor_bytes(tv))
        if match:
            bv = reader.read(p.base, start, n, "b")
            if bh is not None:
                bh.update(tensor_bytes(bv))
            same = same and tensor_bytes(bv) == tensor_bytes(tv)
        w.write(tensor_bytes(tv))
    if bh is not None:
        base_hash[p.base.name] = bh.hexdigest()
    elif p.base is not None and p.base.name not in base_hash:
        base_hash[p.base.name] = _hash_tensor(p.base, reader, chunk)
    entry["sha256"] = th.hexdigest()
    if same:
        w.rollback()
        entry.update(kind="same", base=p.base.name)
    else:
        w.end()
        entry.update(kind="full", diff={"file": shard_name(p.shard, n_shards), "dtype": t.dtype, "sha256": entry["sha256"]})
    return entry


def _finish_base_hash(b: TensorInfo, h, done_elems: int, reader: _Reader, chunk: int) -> None:
    """Hash the base tensor's elements from ``done_elems`` on (rows the tuned tensor does not use)."""
    reader.stream(b, done_elems, b.numel, lambda _, data: h.update(data))


def _hash_tensor(b: TensorInfo, reader: _Reader, chunk: int) -> str:
    h = hashlib.sha256()
    _finish_base_hash(b, h, 0, reader, chunk)
    return h.hexdigest()


def _diff_tensor(p: Planned, w: ReservedShardWriter, reader: _Reader, base_hash: dict, chunk: int, tmp: Path) -> dict | None:
    """Write diff (+ new rows + fixes) of one float tensor; None when the fixes outweigh it."""
    import torch

    t, b = p.tuned, p.base
    T, D = torch_dtype(t.dtype), torch_dtype(p.diff_dtype)
    bits = getattr(torch, BITS[t.dtype])
    arith = _Arith(reader, p.arithmetic)
    overlap = _rows_elems(t, p.base_rows)
    diff_shape = (p.base_rows, *t.shape[1:]) if p.base_rows is not None else t.shape
    th, dh = hashlib.sha256(), hashlib.sha256()
    bh = hashlib.sha256() if b.name not in base_hash else None
    same = b.dtype == t.dtype and b.shape == t.shape
    fixes = 0
    idx_code = "I32" if t.numel < 2**31 else "I64"
    idx_np = np.dtype(DTYPES[idx_code][0])
    fix_budget = t.nbytes // (itemsize(idx_code) + itemsize(t.dtype))  # more fixes than this: send it whole
    lanes = reader.lanes(LANES)
    with tempfile.TemporaryFile(dir=tmp) as fix_idx, tempfile.TemporaryFile(dir=tmp) as fix_val:
        w.begin(t.name, p.diff_dtype, diff_shape)
        for s, start, n, (tv, bv) in reader.chunks(0, overlap, t, b):
            reader.later(s, th.update, tensor_bytes(tv), lane=lanes.get("tuned"))
            if bh is not None:
                reader.later(s, bh.update, tensor_bytes(bv), lane=lanes.get("base"))
            if same:
                same = torch.equal(tv.view(bits), bv.view(bits))
            d, r = reader.buffer(f"d{s}", D, n), reader.buffer("r", T, n)
            b_wide = arith("sub", tv, bv, d)  # the diff: cast_D(tuned - base)
            arith("add", d, bv, r, b_wide)  # what recovery will compute: cast_T(diff + base)
            data = tensor_bytes(d)
            reader.later(s, dh.update, data, lane=lanes.get("diff"))
            reader.later(s, pwrite_all, w.fd, data, w.reserve(len(data)), lane=lanes.get("write"))
            # the elements recovery would get wrong, compared as bits (NaN, -0.0), by numpy: 1.1-1.5
            # ms per 4M bf16 here, against 2.6-4.5 ms for torch.ne
            tb, rb = tv.view(bits).numpy(), r.view(bits).numpy()
            wrong = reader.buffer("m", torch.bool, n).numpy()
            np.not_equal(rb, tb, out=wrong)
            if torch.isnan(r.max()):  # max propagates NaN: 0.6 ms per 4M bf16, where isnan takes 7.5
                # a NaN's sign and payload are the implementation's choice (IEEE 754): never replay them
                np.logical_or(wrong, torch.isnan(r).numpy(), out=wrong)
            bad = np.flatnonzero(wrong)
            if bad.size:
                fixes += bad.size
                if fixes > fix_budget:
                    reader.wait()
                    w.rollback()
                    return None
                fix_idx.write((bad + start).astype(idx_np))
                fix_val.write(tb[bad])
        reader.wait()
        if bh is not None:
            _finish_base_hash(b, bh, overlap, reader, chunk)
            base_hash[b.name] = bh.hexdigest()
        if same:  # bit for bit the base's (same dtype and shape): nothing travels
            w.rollback()
            return {"kind": "same", "base": b.name, "sha256": th.hexdigest()}
        w.end()
        entry = {
            "kind": "diff",
            "base": b.name,
            "arithmetic": p.arithmetic,
            "diff": {"dtype": p.diff_dtype, "sha256": dh.hexdigest()},
        }
        if overlap < t.numel:  # new rows travel whole, in the tuned dtype
            nh = hashlib.sha256()
            w.begin(f"{t.name}:new_rows", t.dtype, (t.shape[0] - p.base_rows, *t.shape[1:]))
            for start in range(overlap, t.numel, chunk):
                tv = reader.read(t, start, min(chunk, t.numel - start), "t")
                th.update(tensor_bytes(tv))
                nh.update(tensor_bytes(tv))
                w.write(tensor_bytes(tv))
            w.end()
            entry["new_rows"] = {"sha256": nh.hexdigest()}
        if p.base_rows is not None:
            entry["base_rows"] = p.base_rows
        if fixes:
            entry["fix"] = {"count": fixes, "index_dtype": idx_code}
            for suffix, f, code in (("index", fix_idx, idx_code), ("value", fix_val, t.dtype)):
                h = hashlib.sha256()
                w.begin(f"{t.name}:fix_{suffix}", code, (fixes,))
                f.seek(0)
                while block := f.read(1 << 24):
                    h.update(block)
                    w.write(memoryview(block))
                w.end()
                entry["fix"][f"{suffix}_sha256"] = h.hexdigest()
        entry["sha256"] = th.hexdigest()
        return entry


def _stats(entries: list[dict], base_m: ModelFiles, tuned_m: ModelFiles, folder: Path, n_shards: int, t0: float) -> dict:
    kinds: dict[str, int] = {}
    for e in entries:
        kinds[e["kind"]] = kinds.get(e["kind"], 0) + 1
    return {
        "tensors": len(entries),
        "kinds": kinds,
        "grown": [e["name"] for e in entries if "new_rows" in e],
        "fixed_elements": sum(e.get("fix", {}).get("count", 0) for e in entries),
        "fixed_tensors": sum(1 for e in entries if "fix" in e),
        "base_bytes": base_m.nbytes,
        "tuned_bytes": tuned_m.nbytes,
        "diff_bytes": sum(p.stat().st_size for p in folder.glob("diff-*.safetensors")),
        "diff_shards": n_shards,
        "seconds": round(time.perf_counter() - t0, 2),
    }


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("cama", "torch", "safetensors"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


# ----------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="<action>", required=True)
    make = sub.add_parser("make", help="write tuned - base as safetensors shards + manifest.json")
    make.add_argument("--base", required=True, help="the base model folder (HF, safetensors)")
    make.add_argument("--tuned", required=True, help="the tuned model folder (HF, safetensors, with its tokenizer)")
    make.add_argument("--out", required=True, help="the diff folder to write")
    make.add_argument("--dtype", default="auto", choices=sorted(DIFF_DTYPES), help="diff dtype (auto: each tuned tensor's)")
    make.add_argument("--max-shard-size", default="2GB", help="largest diff shard, e.g. 500MB (default 2GB)")
    make.add_argument("--chunk-elems", type=int, default=CHUNK_ELEMS, help="elements per chunk (memory ~ 40 bytes each)")
    make.add_argument("--stats", default=None, help="also write the stats here (JSON)")
    make.add_argument("--threads", type=int, default=3, choices=range(1, 6), help=THREADS_HELP)


def run(args: argparse.Namespace) -> int:
    from cama.io import write_json

    run_config = {"command": "cama diff make"}
    stats = make_diff(
        base=args.base, tuned=args.tuned, out=args.out, diff_dtype=args.dtype, max_shard_size=args.max_shard_size,
        chunk_elems=args.chunk_elems, run_config=run_config, threads=args.threads,
    )
    if args.stats:
        write_json(args.stats, stats)
    return 0


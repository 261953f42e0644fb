"""MinHash LSH over shingles, vectorised with numpy: no per-shingle Python work.

Sources: Broder, "On the resemblance and containment of documents" (1997) for MinHash;
Leskovec, Rajaraman & Ullman, *Mining of Massive Datasets* ch. 3 for banding (LSH).

| step | how | cost |
|---|---|---|
| text → units | per batch: ``"\\n".join(t.lower())`` → UTF-32 code points (numpy), whitespace by a table of ``str.isspace`` | a few passes over the code points |
| units | ``char``: each non-whitespace code point (whitespace removed, as ``"".join(t.split())``); ``word``: runs of non-whitespace (as ``t.split()``) | |
| unit hash | ``T[c]``, a random 64-bit value per code point (seeded table, 8.9 MB); a word is the polynomial ``Σ T[c_j]·P^j mod 2^64`` (``np.add.reduceat``), then the splitmix64 finaliser | |
| shingle hash | ``n`` consecutive units of one document: ``mix(Σ_k u_{i+k}·C_k mod 2^64)``, odd random ``C_k``; a document with 1 ≤ m < n units is one shingle of all m (as the reference ``max(1, m - n + 1)``) | n + 7 passes |
| signature | permutation j: ``h_j(x) = (a_j·x + b_j) mod 2^64``, top 32 bits, ``np.minimum.reduceat`` per document | 3 passes × num_perm |
| band key | splitmix64 fold of a band's ``rows`` values → uint64 | |
| candidates | per band: ``argsort`` of the keys, pairs of equal keys up to ``window`` apart in the sorted order | |
| verification | exact Jaccard of the two documents' sets of 64-bit shingle hashes | |

The shingles are those of the anchor baselines (``shared/baselines/bench_minhash.py``):
en/code 5-word shingles of ``text.lower().split()``, zh 5-character shingles of the text with
whitespace removed (we also lower-case it, which only touches Latin letters inside Chinese text).

Collisions. Shingles are stood for by 64-bit hashes. Distinct units hash to independent
random 64-bit values; two distinct shingles then collide with probability about 2^-62 (the
odd weights ``C_k`` may differ by a small power of two). For a pair of documents with
``n`` shingles together, the chance that any collision changes their Jaccard is about
``n² / 2^63``: 1e-11 for n = 10^4. Band keys are 64-bit too: for N documents, about
``bands · N² / 2^65`` spurious candidate pairs (0.8 for 10^9 docs at 28 bands), and
verification removes those anyway.

Speed (one core, benchmarks/dedup_throughput.py, 10 MB, 112 perms, 14 × 8; the README's
figures): en 14.2, zh 12.2, code 19.4 MB/s, 1.28× / 1.34× / 1.13× rensa 0.5.0 and 6.2× / 11.3× /
8.6× datasketch 2.0.0 measured in the same run.
Texts are best hashed ~1 MB at a time (arrays stay in cache; 8 MB batches ran 2× slower).
"""

from __future__ import annotations

import functools

import numpy as np

U64 = np.uint64
_MASK32 = U64(32)
_GOLDEN = 0x9E3779B97F4A7C15


def _splitmix_scalar(x: int) -> int:
    x = (x + _GOLDEN) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return x ^ (x >> 31)


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, elementwise on uint64 (wrap-around arithmetic), in place."""
    x ^= x >> U64(30)
    x *= U64(0xBF58476D1CE4E5B9)
    x ^= x >> U64(27)
    x *= U64(0x94D049BB133111EB)
    x ^= x >> U64(31)
    return x


def _random_u64(seed: int, tag: int, size: int) -> np.ndarray:
    return np.random.Generator(np.random.PCG64([seed & 0xFFFFFFFF, tag])).integers(
        0, 2**64, size=size, dtype=np.uint64, endpoint=False
    )


@functools.cache
def _whitespace_table() -> np.ndarray:
    """``table[c]`` is True where ``chr(c).isspace()``: what ``str.split()`` splits on."""
    table = np.zeros(0x110000, dtype=bool)
    table[[c for c in range(0x3001) if chr(c).isspace()]] = True  # none above U+3000
    return table


@functools.cache
def _unit_table(seed: int) -> np.ndarray:
    """A random 64-bit value per code point (and per surrogate): the char unit hashes."""
    return _random_u64(seed, 1, 0x110000)


@functools.cache
def _shingle_weights(seed: int, n: int) -> np.ndarray:
    return _random_u64(seed, 2, n) | U64(1)


_WORD_BASE = U64(_splitmix_scalar(0xCA3A) | 1)


@functools.cache
def _powers(length: int) -> np.ndarray:
    out = np.full(length, _WORD_BASE, dtype=np.uint64)
    out[0] = 1
    return np.cumprod(out, dtype=np.uint64)


def _code_points(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Lower-cased texts joined by a newline as UTF-32 code points, and each text's start."""
    lowered = [t.lower() for t in texts]
    lengths = np.fromiter((len(t) + 1 for t in lowered), dtype=np.int64, count=len(lowered))
    starts = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=starts[1:])
    joined = "\n".join(lowered).encode("utf-32-le", "surrogatepass")
    return np.frombuffer(joined, dtype=np.uint32), starts


def _per_doc_counts(flags: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """How many ``flags`` are set inside each ``[starts[i], starts[i+1])``."""
    cum = np.zeros(len(flags) + 1, dtype=np.int64)
    np.cumsum(flags, out=cum[1:])
    ends = np.minimum(starts[1:], len(flags))
    return cum[ends] - cum[np.minimum(starts[:-1], len(flags))]


def unit_hashes(texts: list[str], unit: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hashes of the units of each text, concatenated, with offsets (len(texts) + 1)."""
    cps, starts = _code_points(texts)
    table = _unit_table(seed)
    ws = _whitespace_table()[cps]
    if unit == "char":
        keep = ~ws
        counts = _per_doc_counts(keep, starts)
        units = table[cps[keep]]
    elif unit == "word":
        inword = ~ws
        first = inword.copy()
        first[1:] &= ws[:-1]  # a word starts where whitespace ends
        counts = _per_doc_counts(first, starts)
        chars = cps[inword]
        is_first = first[inword]
        word_start = np.flatnonzero(is_first)  # in the compressed (non-whitespace) array
        if len(word_start):
            word_len = np.diff(np.append(word_start, len(chars)))
            rel = np.arange(len(chars), dtype=np.int64) - np.repeat(word_start, word_len)
            vals = table[chars]
            vals *= _powers(max(int(word_len.max()), 1))[rel]
            units = mix64(np.add.reduceat(vals, word_start))
        else:
            units = np.zeros(0, dtype=np.uint64)
    else:
        raise ValueError(f"shingle unit must be 'char' or 'word', not {unit!r}")
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return units, offsets


def shingle_hashes(texts: list[str], unit: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hashes of each text's ``n``-unit shingles (a multiset), concatenated, with offsets.

    A text with 1 ≤ m < n units has one shingle (all its units); a text with none has none.
    """
    units, uoff = unit_hashes(texts, unit, seed)
    weights = _shingle_weights(seed, n)
    m = np.diff(uoff)
    total = len(units)
    full = np.zeros(max(total - n + 1, 0), dtype=np.uint64)
    for k in range(n):
        if len(full):
            full += units[k : k + len(full)] * weights[k]
    # a shingle starts at i when its n units stay inside i's document
    count = np.maximum(m - n + 1, 0)
    short = (m > 0) & (m < n)
    count[short] = 1
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(count, out=offsets[1:])
    # output position p of document d takes full[uoff[d] + (p - offsets[d])]
    idx = np.arange(int(offsets[-1]), dtype=np.int64) + np.repeat(uoff[:-1] - offsets[:-1], count)
    out = (
        full[np.minimum(idx, max(len(full) - 1, 0))]
        if len(full)
        else np.zeros(int(offsets[-1]), dtype=np.uint64)
    )
    if short.any():
        s_start, s_len = uoff[:-1][short], m[short]
        acc = np.zeros(int(short.sum()), dtype=np.uint64)
        for k in range(n - 1):
            take = k < s_len
            acc[take] += units[s_start[take] + k] * weights[k]
        out[offsets[:-1][short]] = acc
    return mix64(out), offsets


def shingle_sets(texts: list[str], unit: str, n: int, seed: int) -> list[np.ndarray]:
    """Each text's set of shingle hashes, sorted and unique: what Jaccard is computed on."""
    hashes, offsets = shingle_hashes(texts, unit, n, seed)
    return [np.unique(hashes[offsets[i] : offsets[i + 1]]) for i in range(len(texts))]


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard of two sorted, unique arrays; 1.0 when both are empty."""
    if len(a) > len(b):
        a, b = b, a
    if not len(a):
        return 1.0 if not len(b) else 0.0
    pos = np.searchsorted(b, a)
    pos[pos == len(b)] = 0
    inter = int(np.count_nonzero(b[pos] == a))
    return inter / (len(a) + len(b) - inter)


class MinHasher:
    """``num_perm`` hash functions ``(a·x + b) mod 2^64`` (top 32 bits) and LSH band keys."""

    EMPTY = np.uint32(0xFFFFFFFF)

    def __init__(self, num_perm: int, bands: int, rows: int, seed: int):
        if bands * rows > num_perm:
            raise ValueError(f"bands × rows = {bands * rows} exceeds num_perm = {num_perm}")
        self.num_perm, self.bands, self.rows, self.seed = num_perm, bands, rows, seed
        self.a = _random_u64(seed, 3, num_perm) | U64(1)
        self.b = _random_u64(seed, 4, num_perm)
        self.band_salt = _random_u64(seed, 5, bands)

    def signatures(self, hashes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """uint32 [docs, num_perm]; a document without shingles gets all 0xFFFFFFFF."""
        ndocs = len(offsets) - 1
        sig = np.full((ndocs, self.num_perm), self.EMPTY, dtype=np.uint32)
        nonempty = offsets[1:] > offsets[:-1]
        if not nonempty.any():
            return sig
        starts = offsets[:-1][nonempty]
        buf = np.empty_like(hashes)
        rows = np.flatnonzero(nonempty)
        for j in range(self.num_perm):
            np.multiply(hashes, self.a[j], out=buf)
            buf += self.b[j]
            sig[rows, j] = np.minimum.reduceat(buf, starts) >> _MASK32
        return sig

    def band_keys(self, sig: np.ndarray) -> np.ndarray:
        """uint64 [docs, bands]: each band's ``rows`` values folded into one 64-bit key."""
        ndocs = sig.shape[0]
        keys = np.empty((ndocs, self.bands), dtype=np.uint64)
        for b in range(self.bands):
            h = np.full(ndocs, self.band_salt[b], dtype=np.uint64)
            for r in range(self.rows):
                h ^= sig[:, b * self.rows + r].astype(np.uint64)
                mix64(h)
            keys[:, b] = h
        return keys

    def keys_for(self, texts: list[str], unit: str, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Band keys and shingle counts of a batch of texts (shingles hashed with this seed)."""
        hashes, offsets = shingle_hashes(texts, unit, n, self.seed)
        return self.band_keys(self.signatures(hashes, offsets)), np.diff(offsets)


def estimate_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    """The MinHash estimate: the fraction of equal signature values."""
    return float(np.mean(sig_a == sig_b))


_COMPACT_PAIRS = 8 << 20  # pairs buffered (8 bytes each) before they are deduplicated


def candidate_pairs(keys: np.ndarray, window: int = 64) -> np.ndarray:
    """Pairs ``(i, j)``, i < j, of rows that share a band key: int64 [pairs, 2], unique, sorted.

    Within a band, rows are sorted by key; a row is paired with the next ``window`` rows of
    the same key. A bucket of k ≤ window + 1 rows thus gives all its k(k-1)/2 pairs; a larger
    one (boilerplate) gives k·window, which keeps the work linear. Exact duplicates should be
    removed before, or they make such buckets.
    """
    n = keys.shape[0]
    code = np.zeros(0, dtype=np.int64)  # i * n + j, unique; compacted as it grows
    found: list[np.ndarray] = []
    pending = 0
    for b in range(keys.shape[1]):
        col = keys[:, b]
        order = np.argsort(col, kind="stable")
        sk = col[order]
        for d in range(1, window + 1):
            if d >= n:
                break
            same = np.flatnonzero(sk[d:] == sk[:-d])
            if not len(same):
                break
            i, j = order[same].astype(np.int64), order[same + d].astype(np.int64)
            found.append(np.minimum(i, j) * n + np.maximum(i, j))
            pending += len(same)
        if pending > max(_COMPACT_PAIRS, len(code)):
            code, found, pending = np.unique(np.concatenate([code, *found])), [], 0
    if found:
        code = np.unique(np.concatenate([code, *found]))
    return np.stack([code // n, code % n], axis=1) if n else np.zeros((0, 2), dtype=np.int64)


def s_curve(j: float | np.ndarray, bands: int, rows: int):
    """Probability that a pair of Jaccard ``j`` shares at least one band."""
    return 1.0 - (1.0 - np.asarray(j, dtype=float) ** rows) ** bands

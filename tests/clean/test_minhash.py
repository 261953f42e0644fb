"""cama.clean.minhash: shingle hashes stand for the shingles, signatures estimate Jaccard."""

import gzip
import json
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cama.clean import minhash

DEMO = Path(__file__).resolve().parents[2] / "data" / "demo"


def demo_texts(lang: str, limit: int = 300) -> list[str]:
    if lang == "en":
        with gzip.open(DEMO / "en" / "c4_demo.jsonl.gz", "rt", encoding="utf-8") as f:
            return [json.loads(line)["text"] for line in f][:limit]
    data = json.loads(gzip.decompress((DEMO / "zh" / "cmrc2018_dev.json.gz").read_bytes()))
    return [p["context"] for a in data["data"] for p in a["paragraphs"]][:limit]


def reference_shingles(text: str, unit: str, n: int) -> set[str]:
    """The baselines' shingles (shared/baselines/bench_minhash.py), lower-cased."""
    if unit == "char":
        t = "".join(text.lower().split())
        return {t[i : i + n] for i in range(max(1, len(t) - n + 1))} if t else set()
    w = text.lower().split()
    return {" ".join(w[i : i + n]) for i in range(max(1, len(w) - n + 1))} if w else set()


@pytest.mark.parametrize("lang,unit", [("en", "word"), ("zh", "char")])
def test_shingle_hashes_match_reference_sets_on_real_text(lang, unit):
    texts = demo_texts(lang, 200) + ["", " \n\t ", "One two", "x"]
    sets = minhash.shingle_sets(texts, unit, 5, seed=7)
    distinct_ref, distinct_hash = set(), set()
    for text, s in zip(texts, sets, strict=True):
        ref = reference_shingles(text, unit, 5)
        assert len(s) == len(ref)
        distinct_ref |= ref
        distinct_hash.update(s.tolist())
    assert len(distinct_hash) == len(distinct_ref) > 10_000  # no collision across the corpus
    rng = random.Random(0)
    for _ in range(100):
        i, j = rng.randrange(len(texts) - 4), rng.randrange(len(texts) - 4)
        a, b = reference_shingles(texts[i], unit, 5), reference_shingles(texts[j], unit, 5)
        assert minhash.jaccard(sets[i], sets[j]) == pytest.approx(len(a & b) / len(a | b))


def test_short_and_empty_documents():
    h, off = minhash.shingle_hashes(["", "a b", "a b c d e f", "   "], "word", 5, seed=1)
    assert np.diff(off).tolist() == [0, 1, 2, 0]
    # the 2-word doc is one shingle, distinct from every 5-word one
    assert h[0] not in set(h[1:].tolist())


def test_batching_does_not_change_hashes():
    texts = demo_texts("en", 40)
    whole, off = minhash.shingle_hashes(texts, "word", 5, seed=3)
    parts = [minhash.shingle_hashes([t], "word", 5, seed=3)[0] for t in texts]
    assert np.array_equal(whole, np.concatenate(parts))
    other_seed, _ = minhash.shingle_hashes(texts, "word", 5, seed=4)
    assert not np.array_equal(whole, other_seed)


@settings(max_examples=60, deadline=None)
@given(
    shared=st.integers(0, 300),
    only_a=st.integers(0, 300),
    only_b=st.integers(0, 300),
    seed=st.integers(0, 2**31),
)
def test_minhash_estimate_is_close_to_true_jaccard(shared, only_a, only_b, seed):
    """Random word sets (1-word shingles); 112 permutations give sd ≤ 0.047."""
    if shared + only_a == 0 or shared + only_b == 0:
        return
    words = [f"w{seed}_{i}" for i in range(shared + only_a + only_b)]
    a = " ".join(words[: shared + only_a])
    b = " ".join(words[:shared] + words[shared + only_a :])
    true = shared / (shared + only_a + only_b)
    hasher = minhash.MinHasher(112, 28, 4, seed)
    h, off = minhash.shingle_hashes([a, b], "word", 1, seed)
    sig = hasher.signatures(h, off)
    sd = (true * (1 - true) / 112) ** 0.5
    assert abs(minhash.estimate_jaccard(sig[0], sig[1]) - true) <= 5 * sd + 0.03


def test_minhash_estimate_is_unbiased_on_real_pairs():
    texts = demo_texts("en", 120)
    words = [t.split() for t in texts]
    # each doc against a copy with its second half replaced: Jaccard spread over (0, 1)
    rng = random.Random(0)
    pairs = []
    for w in words:
        if len(w) < 40:
            continue
        cut = rng.randrange(len(w) // 4, len(w))
        pairs.append((" ".join(w), " ".join(w[:cut] + [f"zz{k}" for k in range(len(w) - cut)])))
    flat = [t for p in pairs for t in p]
    hasher = minhash.MinHasher(112, 28, 4, 11)
    h, off = minhash.shingle_hashes(flat, "word", 5, 11)
    sig = hasher.signatures(h, off)
    sets = minhash.shingle_sets(flat, "word", 5, 11)
    err = [
        minhash.estimate_jaccard(sig[2 * k], sig[2 * k + 1])
        - minhash.jaccard(sets[2 * k], sets[2 * k + 1])
        for k in range(len(pairs))
    ]
    assert len(err) > 50
    assert abs(np.mean(err)) < 0.02  # no bias
    assert np.std(err) < 0.06  # about the binomial sd at 112 permutations


@given(st.sets(st.integers(0, 50)), st.sets(st.integers(0, 50)))
def test_jaccard_of_sorted_arrays(a, b):
    x = np.array(sorted(a), dtype=np.uint64)
    y = np.array(sorted(b), dtype=np.uint64)
    expected = len(a & b) / len(a | b) if a | b else 1.0
    assert minhash.jaccard(x, y) == pytest.approx(expected)


def test_candidate_pairs_share_a_band_and_large_buckets_stay_linear():
    keys = np.array([[1, 5], [2, 5], [1, 6], [3, 7]], dtype=np.uint64)
    assert minhash.candidate_pairs(keys).tolist() == [[0, 1], [0, 2]]
    big = np.zeros((200, 1), dtype=np.uint64)  # one bucket of 200 rows
    pairs = minhash.candidate_pairs(big, window=8)
    assert len(pairs) == sum(min(8, 199 - i) for i in range(200))
    assert (pairs[:, 0] < pairs[:, 1]).all()
    assert minhash.candidate_pairs(np.zeros((0, 3), dtype=np.uint64)).shape == (0, 2)


def test_bands_times_rows_must_fit_num_perm():
    with pytest.raises(ValueError, match="exceeds num_perm"):
        minhash.MinHasher(100, 28, 4, 0)


def test_s_curve():
    assert minhash.s_curve(0.8, 28, 4) > 0.9999
    assert minhash.s_curve(0.1, 28, 4) < 0.01

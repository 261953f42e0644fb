"""cama diff make + cama recover: bit-exact recovery of the demo-like model, whatever the layout or dtype."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from _models import load_state, same_files, save_model, trained

from cama.publish.diff import make_diff
from cama.publish.manifest import load_manifest
from cama.publish.recover import recover


def roundtrip(base: Path, tuned: Path, tmp: Path, **kw) -> tuple[dict, Path]:
    """make then recover; the recovered folder must equal the tuned folder file for file."""
    stats = make_diff(base=base, tuned=tuned, out=tmp / "diff", **kw)
    recover(base=base, diff=tmp / "diff", out=tmp / "recovered", chunk_elems=kw.get("chunk_elems", 1 << 22), threads=kw.get("threads", 3))
    assert same_files(tuned, tmp / "recovered") == []
    return stats, tmp / "diff"


def test_recovers_the_demo_like_model_byte_for_byte(tiny_base, tuned_tiny, tiny_diff, tmp_path):
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    out = tmp_path / "recovered"
    stats = recover(base=tiny_base, diff=tiny_diff, out=out)
    assert same_files(tuned_tiny, out) == []  # shards, index, config, tokenizer: identical bytes
    assert stats["verified"] == len(load_state(tuned_tiny))
    # transformers loads it, and it is the tuned model, not the base
    rec = AutoModelForCausalLM.from_pretrained(out)
    ref = AutoModelForCausalLM.from_pretrained(tuned_tiny)
    for (n, a), (_, b) in zip(rec.state_dict().items(), ref.state_dict().items(), strict=True):
        assert torch.equal(a, b), n
    # the diff shards are real safetensors: the library reads each tensor and it hashes as recorded
    manifest = load_manifest(tiny_diff)
    assert len(manifest["diff_files"]) > 1  # max_shard_size 100KB split it
    import hashlib

    for e in manifest["tensors"]:
        if e["kind"] in ("diff", "full"):
            with safe_open(tiny_diff / e["diff"]["file"], "pt") as f:
                t = f.get_tensor(e["name"])
            assert hashlib.sha256(t.contiguous().view(torch.uint8).numpy()).hexdigest() == e["diff"]["sha256"]
    kinds = manifest["stats"]["kinds"]
    assert kinds["same"] == sum(1 for n in load_state(tiny_base) if "norm" in n)  # untouched norms cost nothing
    assert kinds["diff"] > 0 and "full" not in kinds


@pytest.mark.parametrize(
    ("tuned_dtype", "diff_dtype"),
    [
        (torch.float32, "auto"),
        (torch.float32, "bfloat16"),
        (torch.bfloat16, "auto"),
        (torch.bfloat16, "float16"),
        (torch.bfloat16, "float32"),
        (torch.float16, "bfloat16"),
    ],
)
def test_bit_exact_in_the_tuned_dtype_whatever_the_diff_dtype(tiny_base, tmp_path, tuned_dtype, diff_dtype):
    # the base stays float32: a tuned model saved in another precision is recovered too
    tuned = save_model(trained(load_state(tiny_base), dtype=tuned_dtype), tmp_path / "tuned", tiny_base)
    # threads=5 (a thread reads ahead) where make stops diffs early, fixes outweighing them
    threads = 5 if diff_dtype == "bfloat16" and tuned_dtype == torch.float32 else 3
    stats, diff = roundtrip(tiny_base, tuned, tmp_path, diff_dtype=diff_dtype, threads=threads)
    m = load_manifest(diff)
    fixed = [e for e in m["tensors"] if "fix" in e]
    assert stats["fixed_elements"] == sum(e["fix"]["count"] for e in fixed)
    if diff_dtype == "bfloat16" and tuned_dtype == torch.float32:
        # 8 bits of mantissa cannot carry float32 changes: most tensors then travel whole
        assert stats["kinds"].get("full", 0) > stats["kinds"].get("diff", 0)
    if diff_dtype == "float32":
        assert stats["fixed_elements"] == 0  # float32 holds any bf16 difference exactly


def test_fixes_make_special_values_exact(tiny_base, tmp_path):
    """NaN, ±inf, -0.0, subnormals and sign flips: the stored fixes carry what arithmetic cannot."""
    state = load_state(tiny_base)
    tuned_state = trained(state)
    name = next(n for n in state if "q_proj" in n)
    t = tuned_state[name].clone().view(-1)
    t[:8] = torch.tensor([float("nan"), float("inf"), -float("inf"), -0.0, 1e-40, -1e-42, 3e38, -3e38])
    tuned_state[name] = t.view(state[name].shape)
    tuned = save_model(tuned_state, tmp_path / "tuned", tiny_base)
    stats, diff = roundtrip(tiny_base, tuned, tmp_path, diff_dtype="float32")
    entry = next(e for e in load_manifest(diff)["tensors"] if e["name"] == name)
    assert entry["kind"] == "diff" and entry["fix"]["count"] >= 3  # at least nan, +inf, -inf


# the fixture's diff: threads=3; each thread count splits the work its own way (4, 5: a thread reads ahead)
@pytest.mark.parametrize("threads", [1, 2, 4, 5])
def test_chunk_size_and_threads_do_not_change_the_diff(tiny_base, tuned_tiny, tiny_diff, tmp_path, threads):
    make_diff(base=tiny_base, tuned=tuned_tiny, out=tmp_path / "d", max_shard_size="100KB", chunk_elems=97, threads=threads)
    differ = [n for n in same_files(tiny_diff, tmp_path / "d") if n != "manifest.json"]
    assert differ == []
    a, b = load_manifest(tiny_diff), load_manifest(tmp_path / "d")
    assert a["tensors"] == b["tensors"] and a["base"] == b["base"]
    recover(base=tiny_base, diff=tmp_path / "d", out=tmp_path / "r", chunk_elems=97, threads=threads)
    assert same_files(tuned_tiny, tmp_path / "r") == []


def test_grown_vocabulary_sends_new_rows_whole(tiny_base, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_base)
    tok = AutoTokenizer.from_pretrained(tiny_base)
    old = model.get_input_embeddings().weight.shape[0]
    tok.add_tokens(["<ner>", "</ner>", "<rel>"])
    model.resize_token_embeddings(len(tok))
    state = trained({k: v.detach() for k, v in model.state_dict().items()})
    tuned = tmp_path / "tuned"
    model.config.vocab_size = len(tok)
    model.config.save_pretrained(tuned)
    tok.save_pretrained(tuned)
    save_model(state, tuned, tuned, tokenizer=False)
    stats, diff = roundtrip(tiny_base, tuned, tmp_path)
    grown = {e["name"]: e for e in load_manifest(diff)["tensors"] if "new_rows" in e}
    assert set(grown) == {"model.embed_tokens.weight", "lm_head.weight"}
    assert all(e["base_rows"] == old for e in grown.values())
    assert AutoTokenizer.from_pretrained(tmp_path / "recovered").convert_tokens_to_ids("<rel>") == old + 2


def test_tied_base_and_untied_tuned_and_back(tiny_base, tmp_path):
    state = load_state(tiny_base)
    tied = {k: v for k, v in state.items() if k != "lm_head.weight"}
    base_tied = save_model(tied, tmp_path / "base_tied", tiny_base, config={"tie_word_embeddings": True})
    # a tied base, an untied tuned model: lm_head is diffed against the base's embedding matrix
    untied = trained({**tied, "lm_head.weight": tied["model.embed_tokens.weight"].clone()})
    tuned = save_model(untied, tmp_path / "tuned_untied", tiny_base)
    _, diff = roundtrip(base_tied, tuned, tmp_path / "a")
    head = next(e for e in load_manifest(diff)["tensors"] if e["name"] == "lm_head.weight")
    assert head["kind"] == "diff" and head["base"] == "model.embed_tokens.weight"
    # an untied base, a tied tuned model: the base's lm_head is not needed, and is listed as such
    tuned_tied = save_model(trained(tied), tmp_path / "tuned_tied", tiny_base, config={"tie_word_embeddings": True})
    _, diff2 = roundtrip(tiny_base, tuned_tied, tmp_path / "b")
    assert load_manifest(diff2)["base_unused"] == ["lm_head.weight"]


def test_one_sided_tensors_and_other_shard_layouts(tiny_base, tmp_path):
    state = trained(load_state(tiny_base))
    state["model.extra_adapter.weight"] = torch.randn(7, 5)  # only the tuned model has it
    state["model.layers.0.mlp.up_proj.weight"] = torch.randn(3, 3)  # a shape that changed: travels whole
    base_state = {**load_state(tiny_base), "model.base_only.bias": torch.ones(4)}
    base = save_model(base_state, tmp_path / "base4", tiny_base, shards=4)  # sharded base, single-file tuned
    tuned = save_model(state, tmp_path / "tuned1", tiny_base)
    stats, diff = roundtrip(base, tuned, tmp_path, max_shard_size="50KB")
    m = load_manifest(diff)
    by = {e["name"]: e for e in m["tensors"]}
    assert by["model.extra_adapter.weight"]["kind"] == "full"
    assert by["model.layers.0.mlp.up_proj.weight"]["kind"] == "full"
    # the base's tensors that nothing is built from: its own extra, and the up_proj whose shape changed
    assert set(m["base_unused"]) == {"model.base_only.bias", "model.layers.0.mlp.up_proj.weight"}
    assert "model.base_only.bias" in m["base"]["tensors"]  # still part of the fingerprint
    assert stats["diff_shards"] > 1


def test_manifest_records_what_recovery_needs(tiny_base, tuned_tiny, tiny_diff):
    m = load_manifest(tiny_diff)
    assert set(m["base"]["tensors"]) == set(load_state(tiny_base))
    assert all(len(v["sha256"]) == 64 for v in m["base"]["tensors"].values())
    assert [e["name"] for e in m["tensors"]] == [
        n for f in sorted(tuned_tiny.glob("*.safetensors")) for n in _header_order(f)
    ]  # tuned file order, then data order
    assert set(m["tuned"]["weight_files"]) == {p.name for p in tuned_tiny.glob("*.safetensors")}
    assert "tokenizer.json" in m["files"] and "model.safetensors.index.json" in m["files"]
    assert len(m["tokenizer_sha256"]) == 64
    assert m["config"]["diff_dtype"] == "auto" and m["config"]["versions"]["torch"]


def _header_order(path: Path) -> list[str]:
    import struct

    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    header.pop("__metadata__", None)
    return sorted(header, key=lambda k: header[k]["data_offsets"][0])


def test_cli_make_then_recover(tiny_base, tuned_tiny, tmp_path):
    from cama.cli import main

    assert main(["diff", "make", "--base", str(tiny_base), "--tuned", str(tuned_tiny), "--out", str(tmp_path / "d"),
                 "--dtype", "bfloat16", "--stats", str(tmp_path / "s.json")]) == 0  # fmt: skip
    assert json.loads((tmp_path / "s.json").read_text())["tensors"] == len(load_state(tuned_tiny))
    assert main(["recover", "--base", str(tiny_base), "--diff", str(tmp_path / "d"), "--out", str(tmp_path / "r")]) == 0
    assert same_files(tuned_tiny, tmp_path / "r") == []
    # a second recover into the same, non-empty folder is refused and leaves it alone
    assert main(["recover", "--base", str(tiny_base), "--diff", str(tmp_path / "d"), "--out", str(tmp_path / "r")]) == 1
    assert same_files(tuned_tiny, tmp_path / "r") == []


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_one_pass_arithmetic_is_float32_with_one_rounding(dtype):
    """make and recover add and subtract bf16/f16 with torch's own op (one pass, no temporary):
    it must give, bit for bit, what the manifest's recipe says, cast(float32(x) ± float32(y)),
    for every value of the dtype (±inf, ±0, subnormals) against random partners, in vectorised
    blocks and in the scalar tail of a length no vector width divides. A NaN result is a NaN,
    its sign and payload being left to the implementation (IEEE 754): make stores every NaN
    result as a fix, so recovery never depends on them."""
    from cama.publish.diff import _Arith, _Reader, replay_dtypes

    assert replay_dtypes("BF16", "BF16", "BF16") and not replay_dtypes("BF16", "F32", "BF16")
    every = torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16).view(dtype)
    g = torch.Generator().manual_seed(0)
    reader = _Reader(threads=1)
    try:
        for _ in range(8):
            other = torch.randint(-(2**15), 2**15, (2**16,), generator=g, dtype=torch.int32).to(torch.int16).view(dtype)
            for x, y in ((every, other), (other[:65531], every[:65531])):
                for op, fn in (("sub", torch.sub), ("add", torch.add)):
                    out = torch.empty_like(x)
                    assert _Arith(reader, "F32")(op, x, y, out) is None  # the one-pass path
                    want = fn(x.float(), y.float()).to(dtype)
                    nan = want.isnan()
                    assert torch.equal(out.isnan(), nan), (dtype, op)
                    assert torch.equal(out.view(torch.int16)[~nan], want.view(torch.int16)[~nan]), (dtype, op)
    finally:
        reader.close()


def test_nan_results_are_always_fixed(tiny_base, tmp_path):
    """A NaN in the tuned model whose replayed value is a NaN of the same bits is still a fix."""
    state = load_state(tiny_base)
    tuned_state = trained(state, dtype=torch.bfloat16)
    name = next(n for n in state if "k_proj" in n)
    # the NaN torch's bf16 arithmetic returns on this machine (0xFFFF from AVX2 blocks, 0x7FC0
    # from the scalar tail), so that the replay gives the tuned bits back exactly
    probe = torch.full((state[name].numel(),), float("nan"), dtype=torch.bfloat16)
    for _ in range(3):
        probe = torch.add(torch.sub(probe, probe), probe)
    quiet_nan = int(probe.view(torch.int16)[0])
    t = tuned_state[name].clone().view(-1)
    t.view(torch.int16)[:3] = quiet_nan
    tuned_state[name] = t.view(state[name].shape)
    base_state = {k: v.to(torch.bfloat16) for k, v in state.items()}
    b = base_state[name].clone().view(-1)
    b.view(torch.int16)[:3] = quiet_nan  # NaN - NaN, NaN + NaN: NaN, whichever bits another machine gives it
    base_state[name] = b.view(state[name].shape)
    base = save_model(base_state, tmp_path / "base", tiny_base)
    tuned = save_model(tuned_state, tmp_path / "tuned", tiny_base)
    _, diff = roundtrip(base, tuned, tmp_path)
    from safetensors import safe_open

    entry = next(e for e in load_manifest(diff)["tensors"] if e["name"] == name)
    assert entry["kind"] == "diff"
    with safe_open(diff / entry["diff"]["file"], "pt") as f:
        fixed = f.get_tensor(f"{name}:fix_index")
    assert fixed[:3].tolist() == [0, 1, 2]

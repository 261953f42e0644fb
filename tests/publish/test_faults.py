"""Bad input to cama recover and cama diff make: each a named error, and no output that looks complete."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from _models import load_state, save_model, trained

from cama.errors import FormatError
from cama.publish.diff import make_diff
from cama.publish.errors import (
    DiffIntegrityError,
    ManifestMismatchError,
    MissingFileError,
    TruncatedFileError,
    WrongBaseError,
)
from cama.publish.recover import recover
from cama.publish.safetensors_io import read_header


def copy_diff(diff: Path, tmp: Path) -> Path:
    out = tmp / "diff"
    shutil.copytree(diff, out)
    return out


def fails_cleanly(tmp: Path, base: Path, diff: Path, error: type, *needles: str, threads: int = 3) -> str:
    """recover raises ``error`` with every needle in its message, and leaves no output behind."""
    out = tmp / "out"
    with pytest.raises(error) as info:
        recover(base=base, diff=diff, out=out, threads=threads)
    message = str(info.value)
    for needle in needles:
        assert needle in message, message
    assert not out.exists()
    assert not list(tmp.glob("out.tmp-*"))
    return message


@pytest.fixture(scope="module")
def rich_diff(tiny_base, tmp_path_factory) -> Path:
    """A diff with every kind of tensor: diff, same, full, new rows of a grown vocabulary, fixes."""
    tmp = tmp_path_factory.mktemp("rich")
    state = trained(load_state(tiny_base))
    for name in ("model.embed_tokens.weight", "lm_head.weight"):  # 5 new tokens
        state[name] = torch.cat([state[name], torch.randn(5, state[name].shape[1]) * 0.02])
    q = next(n for n in state if "q_proj" in n)
    state[q].view(-1)[:3] = torch.tensor([1e-30, -1e-30, 3e38])  # lost in tuned - base: needs fixes
    state["model.extra.weight"] = torch.randn(4, 4)
    tuned = save_model(state, tmp / "tuned", tiny_base)
    make_diff(base=tiny_base, tuned=tuned, out=tmp / "diff")
    kinds = {t.name.partition(":")[2] for f in (tmp / "diff").glob("diff-*") for t in read_header(f).tensors.values()}
    assert kinds == {"", "new_rows", "fix_index", "fix_value"}
    return tmp / "diff"


# threads=5: a thread reads ahead, and is still reading when the error stops the loop
@pytest.mark.parametrize(("which", "threads"), [("tiny_diff", 3), ("rich_diff", 3), ("rich_diff", 5)])
def test_every_flipped_byte_in_a_diff_shard_names_its_tensor(tiny_base, tmp_path, request, which, threads):
    source = request.getfixturevalue(which)
    names = []
    for shard in sorted(source.glob("diff-*.safetensors")):
        for t in read_header(shard).tensors.values():
            for where, bit in (((t.begin + t.end) // 2, 0x10), (t.end - 1, 0x80)):  # middle; last byte, top bit
                work = tmp_path / f"{len(names)}"
                diff = copy_diff(source, work)
                data = bytearray((diff / shard.name).read_bytes())
                data[where] ^= bit
                (diff / shard.name).write_bytes(bytes(data))
                fails_cleanly(work, tiny_base, diff, DiffIntegrityError, shard.name, repr(t.name), "download it again", threads=threads)
                names.append(t.name)
    assert len(names) > 10


def test_a_flipped_byte_in_a_shard_header_is_caught_before_any_work(tiny_base, tiny_diff, tmp_path):
    diff = copy_diff(tiny_diff, tmp_path)
    shard = sorted(diff.glob("diff-*.safetensors"))[0]
    data = bytearray(shard.read_bytes())
    i = data.index(b'"shape":[') + len(b'"shape":[')
    data[i] = ord("9") if data[i] != ord("9") else ord("8")  # a shape digit: still valid JSON
    shard.write_bytes(bytes(data))
    # the tensor's declared shape no longer fits its bytes: a format error that names file and tensor
    fails_cleanly(tmp_path, tiny_base, diff, FormatError, shard.name, "do not fit")


def test_another_base_release_names_the_first_tensor(tiny_base, tiny_diff, tmp_path):
    state = {k: v + 1e-3 if "embed" in k else v for k, v in load_state(tiny_base).items()}
    other = save_model(state, tmp_path / "other_base", tiny_base)
    fails_cleanly(tmp_path, other, tiny_diff, WrongBaseError, "'model.embed_tokens.weight'", "another release")


def test_a_bf16_copy_of_the_base_is_recognised(tiny_base, tiny_diff, tmp_path):
    state = {k: v.to(torch.bfloat16) for k, v in load_state(tiny_base).items()}
    bf16 = save_model(state, tmp_path / "bf16_base", tiny_base)
    fails_cleanly(tmp_path, bf16, tiny_diff, WrongBaseError, "BF16", "F32", "fp16/bf16")


def test_a_base_from_another_conversion_script_is_recognised(tiny_base, tiny_diff, tmp_path):
    state = {k.replace("model.", "transformer."): v for k, v in load_state(tiny_base).items()}
    renamed = save_model(state, tmp_path / "renamed", tiny_base)
    fails_cleanly(tmp_path, renamed, tiny_diff, WrongBaseError, "no tensor", "conversion script")


def test_a_truncated_diff_shard(tiny_base, tiny_diff, tmp_path):
    diff = copy_diff(tiny_diff, tmp_path)
    shard = sorted(diff.glob("diff-*.safetensors"))[-1]
    shard.write_bytes(shard.read_bytes()[:-1000])
    fails_cleanly(tmp_path, tiny_base, diff, TruncatedFileError, shard.name, "truncated")


def test_a_truncated_base_shard(tiny_base, tiny_diff, tmp_path):
    base = tmp_path / "base"
    shutil.copytree(tiny_base, base)
    f = base / "model.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    fails_cleanly(tmp_path, base, tiny_diff, TruncatedFileError, "model.safetensors")


@pytest.mark.parametrize("damage", ["shape", "missing_tensor", "unlisted_shard", "size"])
def test_a_manifest_that_does_not_match_its_files(tiny_base, tiny_diff, tmp_path, damage):
    diff = copy_diff(tiny_diff, tmp_path)
    m = json.loads((diff / "manifest.json").read_text())
    entry = next(e for e in m["tensors"] if e["kind"] == "diff" and "fix" not in e and "base_rows" not in e)
    if damage == "shape":
        entry["shape"] = [entry["shape"][0] + 1, *entry["shape"][1:]]
        needle = entry["name"]
    elif damage == "missing_tensor":
        m["tensors"].remove(entry)
        needle = f"tensor {entry['name']!r} is not in manifest.json"
    elif damage == "unlisted_shard":
        f = entry["diff"]["file"]
        del m["diff_files"][f]
        needle = f"{f}, which diff_files does not list"
    else:
        f = next(iter(m["diff_files"]))
        m["diff_files"][f]["size"] += 8
        needle = f
    (diff / "manifest.json").write_text(json.dumps(m))
    fails_cleanly(tmp_path, tiny_base, diff, ManifestMismatchError, needle)


def test_a_missing_tokenizer(tiny_base, tuned_tiny, tiny_diff, tmp_path):
    diff = copy_diff(tiny_diff, tmp_path)
    (diff / "tokenizer.json").unlink()
    fails_cleanly(tmp_path, tiny_base, diff, MissingFileError, "tokenizer.json", "the tokenizer")
    # and a tuned model without a tokenizer cannot be diffed at all
    bare = save_model(load_state(tuned_tiny), tmp_path / "bare", tuned_tiny, tokenizer=False)
    with pytest.raises(MissingFileError, match="no tokenizer"):
        make_diff(base=tiny_base, tuned=bare, out=tmp_path / "d")
    assert not (tmp_path / "d").exists() and not list(tmp_path.glob("d.tmp-*"))


def test_a_missing_manifest_or_shard(tiny_base, tiny_diff, tmp_path):
    diff = copy_diff(tiny_diff, tmp_path / "a")
    sorted(diff.glob("diff-*.safetensors"))[0].unlink()
    fails_cleanly(tmp_path / "a", tiny_base, diff, ManifestMismatchError, "missing", "incomplete")
    diff = copy_diff(tiny_diff, tmp_path / "b")
    (diff / "manifest.json").unlink()
    fails_cleanly(tmp_path / "b", tiny_base, diff, MissingFileError, "manifest.json")


def test_an_interrupted_recovery_leaves_nothing(tiny_base, tiny_diff, tmp_path, monkeypatch):
    import cama.publish.recover as rec

    calls = []
    real = rec._rebuild

    def dying(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # as a Ctrl-C or a kill in the middle would
        return real(*args, **kwargs)

    monkeypatch.setattr(rec, "_rebuild", dying)
    with pytest.raises(KeyboardInterrupt):
        recover(base=tiny_base, diff=tiny_diff, out=tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob("out.tmp-*"))

"""Instruction records -> token ids and the assistant-only loss mask, through the one chat template.

A record (``results/instruct/{train,val}.jsonl``, format in CONTRACTS.md) is a conversation:
``messages`` with an optional system turn, then user and assistant turns. It is rendered with
``cama.chat.CHAT_TEMPLATE`` by ``tokenizer.apply_chat_template(...,
return_assistant_tokens_mask=True)``: the template wraps every assistant turn's content *and its
EOS* in ``{% generation %}``, so the mask marks exactly the tokens the loss falls on, and every
assistant turn ends with EOS (``check_eos`` proves it for each example, so a template that lost
its EOS would stop the run rather than train run-on generations, as the seed's users got).

Nothing is lost. Every record read is an example, or rejected with a reason (written to the
rejected file with its file, line and id), and the counts add up (``stats["records_in"] ==
examples + sum(rejected)``):

| reason | what it means |
|---|---|
| ``bad_json`` | the line is not a JSON object |
| ``no_messages``, ``malformed_turn``, ``bad_turn_order``, ``empty_instruction``, ``empty_output``, ``unfilled_placeholder`` | the record breaks the contract (``cama.instruct.records.check_messages``, the instruct stage's own check: turns are user/assistant pairs after an optional system turn) |
| ``template_error`` | the chat template could not render the record (its message is kept) |
| ``overlong`` | longer than ``cutoff_len`` tokens, under ``overlong: drop`` |
| ``no_target`` | no assistant token left (an empty answer, or ``truncate`` cut them all) |

**Cutoff policy** (``lora.overlong``): ``drop`` (the default) drops a record longer than
``cutoff_len`` tokens, so every kept example ends its answer with EOS. ``truncate`` keeps the
first ``cutoff_len`` tokens, as alpaca-lora did; the cut answer then has no EOS (the model is not
taught to stop where the text was cut), and the example is counted in ``truncated``.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cama.errors import ConfigError
from cama.instruct.records import check_messages

log = logging.getLogger(__name__)

REASONS = ("bad_json", "no_messages", "malformed_turn", "bad_turn_order", "empty_instruction", "empty_output",
           "unfilled_placeholder", "template_error", "overlong", "no_target")


@dataclass
class Example:
    """One tokenized conversation: token ids and the assistant mask (1 where the loss falls)."""

    id: str
    input_ids: np.ndarray  # (length,) int32
    mask: np.ndarray  # (length,) bool: assistant content + EOS
    truncated: bool = False

    def __len__(self) -> int:
        return len(self.input_ids)


def tokenize(tokenizer, messages: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(ids, assistant mask) of one conversation, rendered by the tokenizer's chat template."""
    out = tokenizer.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    ids = np.asarray(out["input_ids"], dtype=np.int32)
    mask = np.asarray(out["assistant_masks"], dtype=bool)
    return ids, mask


def assistant_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of assistant tokens."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def check_eos(ids: np.ndarray, mask: np.ndarray, eos_id: int, truncated: bool = False) -> bool:
    """Every assistant run ends with EOS (the last one may be cut when ``truncated``)."""
    runs = assistant_runs(mask)
    if not runs:
        return False
    if truncated and runs[-1][1] == len(ids):
        runs = runs[:-1]
    return all(ids[b - 1] == eos_id for _, b in runs)


def read_records(path: str | os.PathLike):
    """Yield (line number, record or None, reason or None) for each non-blank line."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                yield n, None, "bad_json"
                continue
            if not isinstance(rec, dict):
                yield n, None, "bad_json"
                continue
            yield n, rec, None


def prepare(
    path: str | os.PathLike,
    tokenizer,
    *,
    cutoff_len: int,
    overlong: str = "drop",
    rejected: list | None = None,
) -> tuple[list[Example], dict]:
    """Tokenize every record of ``path``; return the examples and the counts.

    ``rejected`` (a list) receives one dict per rejected record: file, line, id, reason, detail.
    """
    if overlong not in ("drop", "truncate"):
        raise ConfigError(f"lora.overlong: {overlong!r} is not drop or truncate")
    eos = tokenizer.eos_token_id
    examples: list[Example] = []
    reasons: Counter = Counter()
    n_in = truncated = 0
    for line, rec, reason in read_records(path):
        n_in += 1
        rid = rec.get("id", f"{Path(path).name}:{line}") if rec is not None else f"{Path(path).name}:{line}"
        detail = ""
        if reason is None:
            reason = check_messages(rec.get("messages"))  # the instruct stage's own contract check
        if reason is None:
            try:
                ids, mask = tokenize(tokenizer, rec["messages"])
            except Exception as e:  # a template that cannot render this record (raise_exception, jinja errors)
                reason, detail = "template_error", f"{type(e).__name__}: {e}"[:300]
        cut = False
        if reason is None and len(ids) > cutoff_len:
            if overlong == "drop":
                reason, detail = "overlong", f"{len(ids)} tokens > cutoff_len {cutoff_len}"
            else:
                ids, mask, cut = ids[:cutoff_len], mask[:cutoff_len], True
        if reason is None and not mask.any():
            reason = "no_target"
        if reason is None and not check_eos(ids, mask, eos, truncated=cut):
            # the template's {% generation %} block must close every answer with EOS
            raise ConfigError(
                f"{path}:{line}: an assistant turn of record {rid!r} does not end with EOS "
                f"(id {eos}); the tokenizer's chat template is not cama.chat.CHAT_TEMPLATE"
            )
        if reason is not None:
            reasons[reason] += 1
            if rejected is not None:
                rejected.append({"file": str(path), "line": line, "id": rid, "reason": reason, "detail": detail})
            continue
        truncated += cut
        examples.append(Example(str(rid), ids, mask, cut))
    lengths = np.array([len(e) for e in examples], dtype=np.int64)
    stats = {
        "file": str(path),
        "records_in": n_in,
        "examples": len(examples),
        "rejected": {r: reasons[r] for r in REASONS if reasons[r]},
        "truncated": truncated,
        "tokens": int(lengths.sum()),
        "target_tokens": int(sum(int(e.mask.sum()) for e in examples)),
        "length": _percentiles(lengths),
        "cutoff_len": cutoff_len,
        "overlong": overlong,
    }
    assert stats["records_in"] == stats["examples"] + sum(stats["rejected"].values())
    return examples, stats


def _percentiles(lengths: np.ndarray) -> dict:
    if not len(lengths):
        return {}
    q = np.percentile(lengths, [0, 50, 90, 99, 100])
    return {"min": int(q[0]), "p50": float(q[1]), "p90": float(q[2]), "p99": float(q[3]), "max": int(q[4]),
            "mean": float(lengths.mean())}  # fmt: skip


# ----------------------------------------------------------------------------- the tokenized files

EXAMPLE_COLUMNS = ("id", "input_ids", "mask", "truncated")


def write_examples(path: str | os.PathLike, examples: list[Example]) -> None:
    """Parquet: id, input_ids (list<int32>), mask (list<bool>), truncated. Atomic."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from cama.io import atomic_path

    table = pa.table(
        {
            "id": pa.array([e.id for e in examples], pa.string()),
            "input_ids": pa.array([e.input_ids for e in examples], pa.list_(pa.int32())),
            "mask": pa.array([e.mask for e in examples], pa.list_(pa.bool_())),
            "truncated": pa.array([e.truncated for e in examples], pa.bool_()),
        }
    )
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_examples(path: str | os.PathLike) -> list[Example]:
    import pyarrow.parquet as pq

    t = pq.read_table(path).to_pydict()
    return [
        Example(i, np.asarray(ids, dtype=np.int32), np.asarray(m, dtype=bool), bool(tr))
        for i, ids, m, tr in zip(t["id"], t["input_ids"], t["mask"], t["truncated"], strict=True)
    ]


def load_tokenizer(model_dir: str | os.PathLike):
    """The model's tokenizer with cama's chat template."""
    from transformers import AutoTokenizer

    from cama.chat import with_chat_template

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    if tok.eos_token_id is None:
        raise ConfigError(f"{model_dir}: the tokenizer has no EOS token; answers could not end")
    return with_chat_template(tok)


def tokenize_splits(
    *,
    model_dir: str | os.PathLike,
    train: str | os.PathLike,
    val: str | os.PathLike,
    out_dir: str | os.PathLike,
    cutoff_len: int,
    overlong: str = "drop",
) -> dict:
    """The ``lora_data`` rule: both splits -> ``{train,val}.parquet``, ``rejected.jsonl``, ``stats.json``."""
    from cama.io import atomic_path, write_json

    tok = load_tokenizer(model_dir)
    out = Path(out_dir)
    rejected: list[dict] = []
    stats = {}
    for name, path in (("train", train), ("val", val)):
        examples, s = prepare(path, tok, cutoff_len=cutoff_len, overlong=overlong, rejected=rejected)
        if not examples:
            raise ConfigError(
                f"{path}: no usable {name} example ({s['records_in']} records read, rejected: {s['rejected']}); "
                + ("the validation loss needs some" if name == "val" else "nothing to train on")
            )
        write_examples(out / f"{name}.parquet", examples)
        stats[name] = s
        log.info("%s: %d records -> %d examples, %d tokens (%d on the answers); rejected %s, truncated %d",
                 name, s["records_in"], s["examples"], s["tokens"], s["target_tokens"], s["rejected"],
                 s["truncated"])  # fmt: skip
    with atomic_path(out / "rejected.jsonl") as tmp, open(tmp, "w", encoding="utf-8") as f:
        for r in rejected:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    stats["eos_id"] = tok.eos_token_id
    write_json(out / "stats.json", stats)
    return stats

"""Bits per byte on held-out documents, per language.

    bpb = Σ −log p(token | prefix) / (UTF-8 bytes × ln 2)

summed over every token of every held-out document of a language (ANCHORS, evaluation).
Dividing by bytes rather than tokens makes it independent of the tokenizer, so a base and a
continued-pretrained model, or two tokenizers, compare directly. Each document is scored
on its own, after a BOS, with no EOS scored. A document longer than the model's context is
scored in overlapping windows (``stride`` new tokens per window, the rest as context), so
every token is scored exactly once and, after the first window, with at least
``max_length − stride`` tokens of context.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cama.config import from_section, section
from cama.io import write_json

log = logging.getLogger(__name__)


@dataclass
@section("evaluate.bpb")
class BpbSettings:
    """``evaluate.bpb`` in the workflow config (defaults: the schema's)."""

    max_docs: int | None
    """Score at most this many documents per language (null: all held-out documents)."""
    max_length: int | None
    """Window length in tokens (null: the model's max_position_embeddings)."""
    stride: int | None
    """New tokens scored per window of a long document (null: half the window)."""
    batch_size: int
    """Windows per forward pass."""


def windows(n: int, max_length: int, stride: int) -> Iterator[tuple[int, int, int]]:
    """(begin, end, scored) over a sequence of ``n`` tokens whose first is the BOS.

    The window is ``ids[begin:end]``; its last ``scored`` positions are predicted for the
    first time. Together the windows score positions 1..n-1 exactly once.
    """
    if n < 2:
        return
    done = 1  # position 0 (the BOS) is never predicted
    while done < n:
        end = min(done + stride, n) if done > 1 else min(max_length, n)
        begin = max(0, end - max_length)
        yield begin, end, end - done
        done = end


def read_texts(path: str | os.PathLike, max_docs: int | None = None) -> list[str]:
    """The "text" of each line of a held-out jsonl file (at most ``max_docs``)."""
    texts = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            text = json.loads(line)["text"]
            if text:
                texts.append(text)
            if max_docs is not None and len(texts) >= max_docs:
                break
    return texts


def score_texts(model, tokenizer, texts: list[str], settings: BpbSettings) -> dict:
    """Σ −log p in nats, tokens and bytes over ``texts``; and their bpb."""
    import torch

    max_length = settings.max_length or model.config.max_position_embeddings
    stride = settings.stride or max(max_length // 2, 1)
    device = next(model.parameters()).device
    bos = tokenizer.bos_token_id
    jobs = []  # (window ids, positions scored at its end)
    n_tokens = n_bytes = 0
    for text in texts:
        ids = [bos, *tokenizer(text, add_special_tokens=False)["input_ids"]]
        n_tokens += len(ids) - 1
        n_bytes += len(text.encode("utf-8"))
        for begin, end, scored in windows(len(ids), max_length, stride):
            jobs.append((ids[begin:end], scored))
    nll = 0.0
    jobs.sort(key=lambda j: len(j[0]))  # similar lengths together: less padding
    with torch.inference_mode():
        for b in range(0, len(jobs), settings.batch_size):
            batch = jobs[b : b + settings.batch_size]
            width = max(len(w) for w, _ in batch)
            ids = torch.zeros((len(batch), width), dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for r, (w, _) in enumerate(batch):
                ids[r, : len(w)] = torch.tensor(w)
                mask[r, : len(w)] = 1
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1)  # (batch, width-1, vocab): predicts ids[:, 1:]
            tok_logp = logp.gather(-1, ids[:, 1:].to(device).unsqueeze(-1)).squeeze(-1)
            for r, (w, scored) in enumerate(batch):
                # the last `scored` predictions of this window are new: positions len(w)-scored .. len(w)-1
                nll -= float(tok_logp[r, len(w) - 1 - scored : len(w) - 1].sum())
    bpb = nll / (n_bytes * math.log(2)) if n_bytes else None
    return {"bpb": bpb, "docs": len(texts), "tokens": n_tokens, "bytes": n_bytes, "nll_nats": nll}


def load_model(path: str | os.PathLike):
    """Model and tokenizer of an HF folder, for scoring (bf16 on GPU, fp32 on CPU)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cuda = torch.cuda.is_available()
    model = AutoModelForCausalLM.from_pretrained(
        str(path), dtype=torch.bfloat16 if cuda else torch.float32, attn_implementation="sdpa"
    )
    model.to("cuda" if cuda else "cpu").eval()
    return model, AutoTokenizer.from_pretrained(str(path))


def evaluate_bpb(
    *,
    models: dict[str, str | os.PathLike],
    heldout: dict[str, str | os.PathLike],
    out_json: str | os.PathLike,
    settings: BpbSettings | dict | None = None,
) -> dict:
    """The ``eval_bpb`` rule: bpb of each model on each language's held-out documents.

    ``models`` maps a name ("base", "pretrained", "merged") to an HF folder; ``heldout`` maps a
    language to its jsonl. Writes ``{"models": {name: {lang: {...}}}, "delta": ...}``.
    """
    if isinstance(settings, dict) or settings is None:
        settings = from_section(BpbSettings, settings)  # checked against the schema, defaults filled
    texts = {lang: read_texts(path, settings.max_docs) for lang, path in heldout.items()}
    out: dict = {"formula": "sum(-ln p) / (utf8_bytes * ln 2)", "models": {}, "paths": {}}
    for name, path in models.items():
        model, tok = load_model(path)
        out["paths"][name] = {"model": str(path), "adapter": None}  # as eval/ie.json records a model
        out["models"][name] = {}
        for lang, docs in texts.items():
            res = score_texts(model, tok, docs, settings)
            out["models"][name][lang] = res
            log.info("%s %s: %.4f bits/byte over %d docs, %d bytes", name, lang, res["bpb"] or float("nan"),
                     res["docs"], res["bytes"])  # fmt: skip
        del model
    names = list(models)
    if len(names) >= 2:  # the second model against the first (pretrained - base): negative = better
        a, b = names[0], names[1]
        out["delta"] = {
            lang: (out["models"][b][lang]["bpb"] - out["models"][a][lang]["bpb"])
            if out["models"][a][lang]["bpb"] is not None and out["models"][b][lang]["bpb"] is not None
            else None
            for lang in texts
        }
        out["delta_of"] = f"{b} - {a}"
    write_json(out_json, out)
    return out


def bpb_table(result: dict) -> str:
    """A Markdown table of the result, for logs and the report."""
    langs = sorted({lang for m in result["models"].values() for lang in m})
    lines = ["| model | " + " | ".join(langs) + " |", "|---" * (len(langs) + 1) + "|"]
    for name, per in result["models"].items():
        cells = [f"{per[lang]['bpb']:.4f}" if per.get(lang, {}).get("bpb") is not None else "n/a" for lang in langs]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    import argparse

    p = argparse.ArgumentParser(prog="python -m cama.evaluate.bpb", description=__doc__.split("\n")[0])
    p.add_argument("--model", action="append", required=True, help="name=path (repeatable)")
    p.add_argument("--heldout", action="append", required=True, help="lang=path.jsonl (repeatable)")
    p.add_argument("--out", required=True)
    p.add_argument("--max-docs", type=int, default=None)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    res = evaluate_bpb(
        models=dict(m.split("=", 1) for m in a.model),
        heldout={k: Path(v) for k, v in (h.split("=", 1) for h in a.heldout)},
        out_json=a.out,
        settings=BpbSettings(max_docs=a.max_docs),
    )
    print(bpb_table(res))


if __name__ == "__main__":
    main()

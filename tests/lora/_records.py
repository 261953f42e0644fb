"""Instruction records in the instruct stage's format (CONTRACTS.md), made from real demo text.

Reading comprehension from CMRC 2018 (zh: the question over its paragraph, the gold answer) and
code completion from HumanEval (en: the prompt, the canonical solution), some multi-turn.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from cama.chat import user_content

ROOT = Path(__file__).resolve().parents[2]


def cmrc(n: int, start: int = 0, context_chars: int = 160) -> list[dict]:
    data = json.load(gzip.open(ROOT / "data/demo/zh/cmrc2018_dev.json.gz"))
    out = []
    for art in data["data"]:
        for para in art["paragraphs"]:
            for qa in para["qas"]:
                out.append({
                    "id": f"cmrc2018/dev/{qa['id']}", "task": "general", "lang": "zh", "source": "cmrc2018",
                    "messages": [
                        {"role": "system", "content": "根据段落回答问题。"},
                        {"role": "user", "content": user_content(qa["question"], para["context"][:context_chars])},
                        {"role": "assistant", "content": qa["answers"][0]["text"]},
                    ],
                    "meta": {},
                })  # fmt: skip
    return out[start : start + n]


def humaneval(n: int, start: int = 0) -> list[dict]:
    lines = gzip.open(ROOT / "data/demo/code/humaneval_python.jsonl.gz", "rt").read().splitlines()
    out = []
    for line in lines[start : start + n]:
        r = json.loads(line)
        msgs = [{"role": "user", "content": "Complete the function.\n\n" + r["prompt"][-300:]},
                {"role": "assistant", "content": r["canonical_solution"][:300]}]  # fmt: skip
        if len(out) % 3 == 0:  # a second turn
            msgs += [{"role": "user", "content": "Now name the function."},
                     {"role": "assistant", "content": r["task_id"].split("/")[-1]}]  # fmt: skip
        out.append({"id": f"humaneval/{r['task_id']}", "task": "code", "lang": "en", "source": "humaneval",
                    "messages": msgs, "meta": {}})  # fmt: skip
    return out


def write_jsonl(path: Path, records: list, raw_lines: tuple[str, ...] = ()) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
        for line in raw_lines:
            f.write(line + "\n")
    return path

"""Case files and ``cama generate`` on the tiny model: YAML/JSONL in, Markdown/JSONL out, bad input named."""

from __future__ import annotations

import json

import pytest

from cama.cli import main
from cama.errors import CamaError
from cama.generate.cases import read_cases

CASES = """
cases:
  - id: greet
    category: translation
    lang: zh
    prompt: 把“早上好”翻译成英文
  - id: add
    category: code
    lang: en
    instruction: Write a Python function that adds two numbers.
    input: "a=1, b=2"
  - id: chat
    category: knowledge
    messages:
      - {role: system, content: Be brief.}
      - {role: user, content: 长城有多长？}
    settings: {max_new_tokens: 3}
"""


def test_cama_generate_writes_a_gallery_and_jsonl(tmp_path, tiny_base):
    cases = tmp_path / "cases.yaml"
    cases.write_text(CASES, encoding="utf-8")
    md, jl = tmp_path / "out.md", tmp_path / "out.jsonl"
    for out in (md, jl):
        assert main(["generate", "--model", str(tiny_base), "--cases", str(cases), "--out", str(out),
                     "--max-new-tokens", "6", "--device", "cpu"]) == 0  # fmt: skip
    rows = [json.loads(line) for line in jl.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["greet", "add", "chat"]
    assert [r["completion_tokens"] for r in rows] == [6, 6, 3]  # the case's own settings win
    assert rows[1]["messages"][0]["content"] == "Write a Python function that adds two numbers.\n\na=1, b=2"
    page = md.read_text()
    assert "## translation" in page and "## code" in page and "### greet (zh)" in page
    assert page.count("cut at length") >= 3


@pytest.mark.parametrize(
    "name,content,match",
    [
        ("c.txt", "x", "unknown case file format"),
        ("c.jsonl", '{"prompt": "a"}\n{bad\n', r"c.jsonl:2: not JSON"),
        ("c.jsonl", '{"prompt": "a", "instruction": "b"}\n', "exactly one of"),
        ("c.yaml", "- {messages: [{role: robot, content: x}]}\n", "messages must be"),
        ("c.yaml", "- {id: a, prompt: x}\n- {id: a, prompt: y}\n", "appears twice"),
        ("c.yaml", "[]\n", "no cases"),
    ],
)
def test_bad_case_files_are_named(tmp_path, name, content, match):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(CamaError, match=match):
        read_cases(path)

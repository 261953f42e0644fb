"""Code: MBPP and HumanEval-style records; the code is fenced in the answer.

- ``mbpp``: ``{text, code, test_list}``: the task and its tests are the question, the
  reference solution is the answer (CRLF line ends become LF).
- ``humaneval``: ``{task_id, prompt, canonical_solution}`` (HumanEval and HumanEval-X): the
  question asks to complete the prompt's function, the answer is prompt + solution. The
  language comes from the task id's prefix (``Python/0``, ``CPP/3``) or ``options.language``.
"""

from __future__ import annotations

from typing import Any

from cama.errors import RecordError
from cama.instruct.converters.base import Context, Conv, field_str
from cama.instruct.records import single_turn

LANGUAGES = {
    "python": "Python",
    "cpp": "C++",
    "java": "Java",
    "js": "JavaScript",
    "go": "Go",
    "rust": "Rust",
}
FENCE = {
    "Python": "python",
    "C++": "cpp",
    "Java": "java",
    "JavaScript": "javascript",
    "Go": "go",
    "Rust": "rust",
}
TESTS = {"en": "Your code should pass these tests:", "zh": "你的代码应通过这些测试："}
COMPLETE = {
    "en": "Complete the following {language} function.",
    "zh": "补全下面这个 {language} 函数。",
}


def _lf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def mbpp(obj: Any, ctx: Context) -> list[Conv]:
    text = field_str(obj, "text")
    code = _lf(field_str(obj, "code")).strip("\n")
    tests = obj.get("test_list") or []
    if not isinstance(tests, list) or not all(isinstance(t, str) for t in tests):
        raise RecordError("bad_test_list")
    question = (
        f"{text.strip()} {TESTS[ctx.lang]}\n\n" + "\n".join(_lf(t) for t in tests)
        if tests
        else text
    )
    output = f"```python\n{code}\n```"
    return [Conv(single_turn(question, None, output), {"task_id": obj.get("task_id")})]


def humaneval(obj: Any, ctx: Context) -> list[Conv]:
    prompt = _lf(field_str(obj, "prompt"))
    solution = _lf(field_str(obj, "canonical_solution"))
    task_id = str(obj.get("task_id", ""))
    key = ctx.options.get("language") or task_id.split("/")[0].lower()
    language = LANGUAGES.get(key)
    if language is None:
        raise RecordError("unknown_language")
    fence = FENCE[language]
    question = f"```{fence}\n{prompt.rstrip()}\n```"
    output = f"```{fence}\n{(prompt + solution).strip(chr(10))}\n```"
    instruction = COMPLETE[ctx.lang].format(language=language)
    return [Conv(single_turn(instruction, question, output), {"task_id": task_id})]

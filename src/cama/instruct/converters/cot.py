"""Chain-of-thought: GSM8K and TAL-SCQ5K-style multiple choice, the rationale kept.

- ``gsm8k``: ``{question, answer}``; the answer is the worked solution, then ``#### N``.
  The calculator marks ``<<48/2=24>>`` are removed (they are for a tool the model does not
  have); the final answer is normalised (thousands separators and a trailing period
  dropped: ``1,000.`` → ``1000``) and stated once at the end, in the source's language, and
  kept in ``meta.answer``. A solution without ``####`` is quarantined (``missing_final_answer``).
- ``tal_scq``: ``{problem, answer_option_list: [[{aoVal, content}]], answer_analysis: [..],
  answer_value}``; the options follow the problem (``A. ...``), the answer is the analysis
  and then the chosen option. No analysis: ``missing_rationale``.
"""

from __future__ import annotations

import re
from typing import Any

from cama.errors import RecordError
from cama.instruct.converters.base import Context, Conv, field_str
from cama.instruct.records import single_turn

CALC = re.compile(r"<<[^<>]*>>")
FINAL = {"en": "The answer is {answer}.", "zh": "答案是 {answer}。"}
CHOICE = {"en": "The answer is {answer}.", "zh": "答案：{answer}"}
PICK = {"en": "Choose one answer.", "zh": "请选择一个答案。"}


def normalise_number(answer: str) -> str:
    answer = answer.strip().rstrip(".").strip()
    return answer.replace(",", "") if re.fullmatch(r"-?[\d,]+(\.\d+)?", answer) else answer


def gsm8k(obj: Any, ctx: Context) -> list[Conv]:
    question = field_str(obj, "question")
    solution = field_str(obj, "answer")
    rationale, sep, final = solution.rpartition("####")
    if not sep or not final.strip():
        raise RecordError("missing_final_answer")
    answer = normalise_number(final)
    steps = CALC.sub("", rationale).strip()
    output = (
        f"{steps}\n{FINAL[ctx.lang].format(answer=answer)}"
        if steps
        else FINAL[ctx.lang].format(answer=answer)
    )
    return [Conv(single_turn(question, None, output), {"answer": answer})]


def tal_scq(obj: Any, ctx: Context) -> list[Conv]:
    problem = field_str(obj, "problem")
    value = field_str(obj, "answer_value")
    options = []
    for group in obj.get("answer_option_list") or []:
        for opt in group if isinstance(group, list) else [group]:
            if not isinstance(opt, dict) or "aoVal" not in opt or "content" not in opt:
                raise RecordError("malformed_options")
            options.append(f"{opt['aoVal']}. {str(opt['content']).strip()}")
    if not options:
        raise RecordError("missing_options")
    analysis = obj.get("answer_analysis") or []
    analysis = [a.strip() for a in analysis if isinstance(a, str) and a.strip()]
    if not analysis:
        raise RecordError("missing_rationale")
    question = f"{problem.strip()}\n" + "\n".join(options)
    output = "\n".join(analysis) + "\n" + CHOICE[ctx.lang].format(answer=value.strip())
    meta = {"answer": value.strip(), "qid": obj.get("qid")}
    return [Conv(single_turn(PICK[ctx.lang], question, output), meta)]

"""The case gallery: our own cases on each model with its decoding preset -> eval/cases.md.

The seed published galleries of hand-picked cases; ours runs every case of
``evaluate.cases.file`` (``data/cases/gallery.yaml``: translation, knowledge, instruction
following, code, long text, reasoning, harmlessness, bilingual writing and IE, in Chinese and
English) on the base or pretrained model with the seed's base preset and on the LoRA model
with its LoRA preset, and marks each output as the seed did: finished with EOS, cut at the
length limit, repetition trimmed.
"""

from __future__ import annotations

import html
import logging
import os
from pathlib import Path

from cama.generate.cases import read_cases, render_markdown, write_jsonl, write_markdown
from cama.generate.settings import resolve
from cama.io import atomic_path

log = logging.getLogger(__name__)


def _case_settings(preset: str, generation: dict | None, own: str | dict | None):
    """The model's preset, the config's overrides, then the case's own settings."""
    if isinstance(own, str):
        return resolve({"preset": own, **(generation or {})})
    return resolve({"preset": preset, **(generation or {}), **(own or {})})


def run_gallery(
    *,
    cases_file: str | os.PathLike,
    models: dict[str, dict],
    out_md: str | os.PathLike,
    out_jsonl: str | os.PathLike,
    out_html: str | os.PathLike | None = None,
    generation: dict | None = None,
) -> dict:
    """``models``: name -> {"model": folder, "adapter": folder or None, "preset": name}."""
    from cama.generate import Engine

    cases = read_cases(cases_file)
    runs = {}
    for name, m in models.items():
        settings = resolve({"preset": m["preset"], **(generation or {})})
        engine = Engine.load(m["model"], m.get("adapter"))
        per = [_case_settings(m["preset"], generation, c.settings) for c in cases]
        gens = engine.generate([c.messages for c in cases], per)
        engine.release()
        runs[name] = {"model": m["model"], "adapter": m.get("adapter"), "preset": m["preset"],
                      "settings": settings.to_dict(), "describe": settings.describe(), "generations": gens}  # fmt: skip
        counts = {r: sum(g.finish_reason == r for g in gens) for r in ("eos", "length", "stop")}
        log.info("%s (%s preset): %d cases; %s; %d repetition-trimmed", name, m["preset"], len(cases), counts,
                 sum(g.repetition_trimmed for g in gens))  # fmt: skip
    title = "Case gallery"
    write_markdown(out_md, cases, runs, title)
    write_jsonl(out_jsonl, cases, runs)
    if out_html:
        page = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>Case gallery</title></head><body>"
                "<pre style='white-space:pre-wrap;font:13px monospace'>"
                + html.escape(render_markdown(cases, runs, title)) + "</pre></body></html>")  # fmt: skip
        with atomic_path(out_html) as tmp:
            Path(tmp).write_text(page, encoding="utf-8")
    return runs

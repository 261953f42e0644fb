"""TEMPORARY stand-in for ``cama.generate`` (issue 13) with the API that CONTRACTS.md fixes.

Deleted when the real engine lands; nothing outside ``cama.serve.engine`` imports it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Settings:
    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    num_beams: int = 1
    repetition_penalty: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def replace(self, **kw) -> Settings:
        return dataclasses.replace(self, **kw)


PRESETS = {"greedy": Settings(), "base": Settings(num_beams=3, repetition_penalty=1.6, max_new_tokens=512),
           "lora": Settings(temperature=0.2, top_p=0.75, top_k=40, max_new_tokens=512)}  # fmt: skip


@dataclass
class Generation:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    repetition_trimmed: bool = False
    token_ids: list[int] = field(default_factory=list)


class Engine:
    def __init__(self, model, tokenizer):
        self.model, self.tokenizer = model, tokenizer

    @classmethod
    def load(cls, model_dir, adapter=None):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from cama.chat import with_chat_template

        tok = AutoTokenizer.from_pretrained(str(model_dir))
        if not tok.chat_template:
            with_chat_template(tok)
        model = AutoModelForCausalLM.from_pretrained(str(model_dir))
        if adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(adapter))
        return cls(model.eval(), tok)

    def generate(self, prompts, settings: Settings, on_token=None) -> list[Generation]:
        import torch
        from transformers.generation.streamers import BaseStreamer

        tok = self.tokenizer
        ids = [tok.apply_chat_template(p, add_generation_prompt=True, tokenize=True, return_dict=False)
               if not isinstance(p, str) else tok(p)["input_ids"] for p in prompts]  # fmt: skip
        ids = [list(x["input_ids"]) if hasattr(x, "keys") else list(x) for x in ids]
        width = max(map(len, ids))
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in ids])
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids])
        outs: list[list[int]] = [[] for _ in prompts]
        done = [False] * len(prompts)
        texts = [""] * len(prompts)

        class Stream(BaseStreamer):
            first = True

            def put(self, value):
                if self.first:
                    self.first = False
                    return
                for i, t in enumerate(value.reshape(-1).tolist()):
                    if done[i]:
                        continue
                    if t == tok.eos_token_id:
                        done[i] = True
                        continue
                    outs[i].append(t)
                    text = tok.decode(outs[i], skip_special_tokens=True)
                    if on_token and not text.endswith("\ufffd"):
                        delta, texts[i] = text[len(texts[i]):], text
                        if delta:
                            on_token(i, delta)

            def end(self):
                pass

        if settings.seed is not None:
            torch.manual_seed(settings.seed)
        sample = settings.temperature > 0
        kw = dict(do_sample=sample, max_new_tokens=settings.max_new_tokens, num_beams=settings.num_beams,
                  repetition_penalty=settings.repetition_penalty, pad_token_id=pad, eos_token_id=tok.eos_token_id)  # fmt: skip
        if sample:
            kw.update(temperature=settings.temperature, top_p=settings.top_p, top_k=settings.top_k or None)
        with torch.inference_mode():
            self.model.generate(input_ids=input_ids, attention_mask=mask,
                                streamer=Stream() if settings.num_beams == 1 else None, **kw)  # fmt: skip
        gens = []
        for i, p in enumerate(ids):
            text = tok.decode(outs[i], skip_special_tokens=True)
            if on_token and text[len(texts[i]):]:
                on_token(i, text[len(texts[i]):])
            reason = "eos" if done[i] else "length"
            for s in settings.stop:
                if s in text:
                    text, reason = text[: text.index(s)], "stop"
            gens.append(Generation(text, reason, len(p), len(outs[i]) + done[i], token_ids=outs[i]))
        return gens

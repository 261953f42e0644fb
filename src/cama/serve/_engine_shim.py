"""TEMPORARY stand-in for ``cama.generate`` (issue 13) with the API that CONTRACTS.md fixes.

Deleted when the real engine lands; nothing outside ``cama.serve.engine`` imports it.
"""

from __future__ import annotations

import asyncio
import collections
import queue
import threading
from dataclasses import dataclass, field

from cama.errors import CamaError

_END = object()


class QueueFull(CamaError):
    pass


class Request:
    def __init__(self, settings):
        self.settings, self.generation = settings, None
        self._events, self._done, self._cancelled = queue.SimpleQueue(), threading.Event(), False
        self._aloop = self._aevent = None

    def _emit(self, piece):
        self._events.put(piece)
        self._notify()

    def _finish(self, generation):
        self.generation = generation
        self._events.put(_END)
        self._done.set()
        self._notify()

    def _notify(self):
        if self._aloop is not None:
            self._aloop.call_soon_threadsafe(self._aevent.set)

    def cancel(self):
        self._cancelled = True

    @property
    def done(self):
        return self._done.is_set()

    def result(self, timeout=None):
        self._done.wait(timeout)
        return self.generation

    def __iter__(self):
        while (x := self._events.get()) is not _END:
            yield x

    async def astream(self):
        self._aevent, self._aloop = asyncio.Event(), asyncio.get_running_loop()
        while True:
            while True:
                try:
                    x = self._events.get_nowait()
                except queue.Empty:
                    break
                if x is _END:
                    return
                yield x
            self._aevent.clear()
            if not self._events.empty():
                continue
            await self._aevent.wait()

    async def aresult(self):
        async for _ in self.astream():
            pass
        return self.generation


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
    error: str | None = None


class Engine:
    def __init__(self, model, tokenizer, max_batch=32, max_queue=1024):
        self.model, self.tokenizer = model, tokenizer
        self.max_batch, self.max_queue = max_batch, max_queue
        self.context = self.max_length = model.config.max_position_embeddings
        self.stats = collections.Counter()
        self._waiting, self._cond, self._thread = collections.deque(), threading.Condition(), None

    def encode(self, prompt):
        tok = self.tokenizer
        if isinstance(prompt, str):
            return tok(prompt)["input_ids"]
        if prompt and isinstance(prompt[0], dict):
            text = tok.apply_chat_template(list(prompt), add_generation_prompt=True, tokenize=False)
            return tok(text, add_special_tokens=False)["input_ids"]
        return list(prompt)

    def start(self, max_length=None):
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._serve, daemon=True)
            self._thread.start()
        return self

    def stop(self):
        if self._thread is not None:
            with self._cond:
                self._stopping = True
                self._cond.notify_all()
            self._thread.join()
            self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def submit(self, prompt, settings=None, *, on_token=None, block=False):
        req = Request(settings or Settings())
        req.prompt = prompt
        with self._cond:
            if len(self._waiting) >= self.max_queue:
                raise QueueFull(f"{len(self._waiting)} requests are waiting (max_queue {self.max_queue})")
            self._waiting.append(req)
            self._cond.notify_all()
        return req

    def _serve(self):
        import time

        while True:
            with self._cond:
                while not self._waiting and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                deadline = time.monotonic() + 0.05
                while len(self._waiting) < self.max_batch and (left := deadline - time.monotonic()) > 0:
                    n = len(self._waiting)
                    self._cond.wait(min(0.01, left))
                    if len(self._waiting) == n:
                        break
                key = self._waiting[0].settings
                batch = [r for r in self._waiting if r.settings == key and not r._cancelled][: self.max_batch]
                self._waiting = collections.deque(r for r in self._waiting if r not in batch and not r._cancelled)
            if not batch:
                continue
            try:
                gens = self.generate([r.prompt for r in batch],
                                     key, on_token=lambda i, piece: (batch[i]._emit(piece), self.stats.update(tokens=1)))  # noqa: B023
            except Exception as e:  # noqa: BLE001
                gens = [Generation("", "error", 0, 0, error=f"{type(e).__name__}: {e}") for _ in batch]
            for r, g in zip(batch, gens, strict=True):
                r._finish(g)
            self.stats["decode_steps"] += max(g.completion_tokens for g in gens)
            self.stats["decode_rows"] += sum(g.completion_tokens for g in gens)

    @classmethod
    def load(cls, model_dir, adapter=None, **kwargs):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from cama.chat import with_chat_template

        tok = AutoTokenizer.from_pretrained(str(model_dir))
        if not tok.chat_template:
            with_chat_template(tok)
        model = AutoModelForCausalLM.from_pretrained(str(model_dir))
        if adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(adapter))
        return cls(model.eval(), tok, **kwargs)

    def generate(self, prompts, settings: Settings, on_token=None) -> list[Generation]:
        import torch
        from transformers.generation.streamers import BaseStreamer

        tok = self.tokenizer
        ids = [self.encode(p) for p in prompts]
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

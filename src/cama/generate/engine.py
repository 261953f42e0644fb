"""The generation engine: continuous batching over a slot KV cache, CUDA graphs on GPU.

One engine serves evaluation (``eval_ie``, ``eval_cases``), ``cama generate`` and the chat,
web and serve commands::

    engine = Engine.load("results/lora/merged")                # device and dtype auto
    outs = engine.generate([[{"role": "user", "content": "..."}], "a raw prompt"],
                           Settings(max_new_tokens=128), on_token=None)
    outs[0].text, outs[0].finish_reason                         # "eos" | "length" | "stop"

    engine.start()                                  # the online interface, for a server:
    req = engine.submit(messages, PRESETS["lora"])  # from any thread; joins the running batch
    for piece in req: ...                           # or `async for piece in req.astream()`
    req.result()                                    # the Generation

**How it decodes.** The KV cache is a fixed set of *slots* (``max_batch`` sequences of up to
``max_length`` tokens, one preallocated tensor per layer). A prompt is prefilled into a free
slot (several at once, right-padded, causal attention), and every step decodes one token for
all occupied slots in a single forward: each row writes its key and value at its own position
and attends to its own slot up to that position. A finished sequence frees its slot at once,
and waiting prompts are prefilled into free slots between steps (*continuous batching*), so a
batch never idles on sequences that have already ended. The model is HF's own module tree
(its projections, RoPE, norms and MLP); only the attention function is ours, registered
through transformers' ``AttentionInterface``, so greedy outputs are those of ``generate``.

On GPU each decode step is one CUDA graph replay (one graph per bucket of batch rows and
attended length, captured lazily), which removes the per-kernel launch cost that dominates a
1B model's step. ``benchmarks/generate_throughput.py`` measures this against HF's static-cache
``generate``; figures in the README.

**What goes through HF ``generate`` instead:** beam search (``num_beams > 1``, the seed's
presets), and every request when the model is not LLaMA-shaped (``FAST_MODEL_TYPES``). Those
are batched (left-padded, length-sorted) and give the same ``Generation``; their text is
streamed once, at the end.

Settings per request: greedy or sampling (temperature, top-k, top-p; seeded per request),
repetition penalty, stop strings, EOS (the tokenizer's and the generation config's), a
length limit (cut and counted as "length"), and repetition trimming of run-on outputs.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import os
import queue
import random
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cama.chat import with_chat_template
from cama.errors import CamaError
from cama.generate.sampling import Sampler
from cama.generate.settings import Generation, Settings, resolve
from cama.generate.text import TextStream, trim_repetition, window_decoder

log = logging.getLogger(__name__)

FAST_MODEL_TYPES = {"llama"}
"""Model types whose attention module calls the attention interface with RoPE'd q/k/v and
nothing after it that depends on the cache (LLaMA-family layers). Others run through HF."""

ATTENTION = "cama_slots"
_END = object()
_ids = itertools.count()


class QueueFull(CamaError):
    """The online queue holds ``max_queue`` waiting requests: try again later."""


# ---------------------------------------------------------------------------------------------
# The slot cache and the attention function that reads and writes it


class SlotCache:
    """Keys and values of ``slots`` sequences of up to ``length`` tokens, per layer.

    Layout per layer: (slots, kv_heads, length, head_dim); a slot's position p holds its
    token p. The engine sets ``mode`` (and the row indices) before each forward.
    """

    def __init__(self, config, slots: int, length: int, dtype: torch.dtype, device: torch.device):
        kv_heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        shape = (slots, kv_heads, length, head_dim)
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(config.num_hidden_layers)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(config.num_hidden_layers)]
        self.slots, self.length = slots, length
        self.bytes = 2 * sum(t.numel() * t.element_size() for t in self.k)
        self.mode = "prefill"
        self.rows: torch.Tensor | None = None  # the slot of each batch row
        self.pos: torch.Tensor | None = None  # decode: the position of each row's token
        self.span = 0  # decode: positions attended (the first `span` of each slot)
        self.mask: torch.Tensor | None = None  # decode: additive (rows, 1, 1, span)

    def attend(self, layer: int, query, key, value, scaling):
        """query (b, heads, q, d), key/value (b, kv_heads, q, d) -> (b, q, heads, d)."""
        if self.mode == "prefill":
            # a right-padded batch of whole prompts: causal attention within each row is exact
            # for its real tokens (padding only follows them); the slot keeps positions 0..q-1
            n = key.shape[2]
            self.k[layer][self.rows, :, :n] = key
            self.v[layer][self.rows, :, :n] = value
            out = F.scaled_dot_product_attention(
                query, key, value, is_causal=True, scale=scaling, enable_gqa=query.shape[1] != key.shape[1]
            )
            return out.transpose(1, 2), None
        b, heads, _, d = query.shape
        kc, vc = self.k[layer], self.v[layer]
        kc[self.rows, :, self.pos] = key[:, :, 0]
        vc[self.rows, :, self.pos] = value[:, :, 0]
        keys, values = kc[:b, :, : self.span], vc[:b, :, : self.span]
        kv_heads = keys.shape[1]
        # grouped-query decode without repeating keys: the query heads sharing a kv head
        # become that head's "query positions" (transformers' pack_gqa does the same)
        q = query.reshape(b, kv_heads, heads // kv_heads, d)
        out = F.scaled_dot_product_attention(q, keys, values, attn_mask=self.mask, scale=scaling)
        return out.reshape(b, 1, heads, d), None


def _slot_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    return module._cama_cache.attend(module.layer_idx, query, key, value, scaling)


def _register_attention() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(ATTENTION, _slot_attention)


# ---------------------------------------------------------------------------------------------
# Requests


class Request:
    """One prompt in flight: its settings, a stream of text pieces, and its result.

    ``stream=False`` (a caller that wants the result only): the engine hands out no pieces and
    detokenises nothing until the end, so the request costs no per-token Python work.
    """

    def __init__(self, prompt_ids: list[int], settings: Settings, on_token: Callable[[str], None] | None, stream: bool):
        self.id = next(_ids)
        self.prompt_ids = prompt_ids
        self.settings = settings
        self.generation: Generation | None = None
        self.streaming = stream or on_token is not None
        self._on_token = on_token
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._done = threading.Event()
        self._cancelled = False
        self._engine: Engine | None = None
        self._waker: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None  # set by astream

    # called by the engine's thread, which wakes asyncio consumers once per step (Engine._deliver)
    def _emit(self, piece: str) -> bool:
        if not piece:
            return False
        if self._on_token is not None:
            self._on_token(piece)
        self._events.put(piece)
        return True

    def _finish(self, generation: Generation) -> None:
        self.generation = generation
        self._events.put(_END)
        self._done.set()

    def _wake(self) -> None:
        """Wake an asyncio consumer now (for a request answered outside the engine's steps)."""
        if (waker := self._waker) is not None:
            try:
                waker[0].call_soon_threadsafe(waker[1].set)
            except RuntimeError:  # its loop is closed: nobody listens
                pass

    # called by the client
    def cancel(self) -> None:
        """Stop this request at the next step (finish reason "cancelled")."""
        self._cancelled = True
        if self._engine is not None:
            self._engine._cancels = True

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def result(self, timeout: float | None = None) -> Generation:
        """The finished generation (blocks)."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"request {self.id} not finished after {timeout} s")
        return self.generation

    def __iter__(self):
        """Text pieces as they are decoded (blocks between them)."""
        while (x := self._events.get()) is not _END:
            yield x

    async def astream(self):
        """Text pieces as they are decoded, for asyncio (an async generator)."""
        event = asyncio.Event()
        self._waker = (asyncio.get_running_loop(), event)
        get, empty = self._events.get_nowait, self._events.empty
        while True:
            try:
                x = get()
            except queue.Empty:
                event.clear()
                if empty():  # a piece put after the get above comes with a wake-up after this clear
                    await event.wait()
                continue
            if x is _END:
                return
            yield x

    async def aresult(self) -> Generation:
        async for _ in self.astream():
            pass
        return self.generation


def _set_all(events: list[asyncio.Event]) -> None:
    for e in events:
        e.set()


class _Seq:
    """A request's decoding state inside the engine."""

    __slots__ = ("req", "prompt", "settings", "max_new", "slot", "out", "stream", "seed", "t0")

    def __init__(self, req: Request, max_new: int, seed: int, tokenizer, decoder):
        self.req = req
        self.prompt = req.prompt_ids
        self.settings = req.settings
        self.max_new = max_new
        self.slot: int | None = None
        self.out: list[int] = []
        s = req.settings
        self.stream = TextStream(tokenizer, s.stop, decoder) if (s.stop or req.streaming) else None
        self.seed = seed
        self.t0 = time.perf_counter()


# ---------------------------------------------------------------------------------------------
# The engine


def _buckets(limit: int, start: int) -> list[int]:
    """start, 2·start, 4·start, ... below limit, then limit."""
    out, x = [], start
    while x < limit:
        out.append(x)
        x *= 2
    return [*out, limit]


class Engine:
    """A model and its tokenizer, ready to generate (see the module docstring)."""

    def __init__(
        self,
        model,
        tokenizer,
        *,
        max_batch: int | None = None,
        max_length: int | None = None,
        cuda_graphs: bool | None = None,
        prefill_tokens: int | None = None,
        max_queue: int = 1024,
        hf_batch: int = 16,
        bucketed: bool | None = None,
        name: str = "",
    ):
        self.model = model.eval()
        self.tokenizer = tokenizer
        if getattr(tokenizer, "chat_template", None) is None:
            with_chat_template(tokenizer)
        self.name = name
        self.config = model.config
        p = next(model.parameters())
        self.device, self.dtype = p.device, p.dtype
        self.cuda = self.device.type == "cuda"
        self.fast = self.config.model_type in FAST_MODEL_TYPES
        self.context = getattr(self.config, "max_position_embeddings", None) or 2048
        self.max_length = min(max_length or self.context, self.context)
        self.max_batch = max_batch or (256 if self.cuda else 32)
        self.cuda_graphs = self.cuda if cuda_graphs is None else (cuda_graphs and self.cuda)
        # decode shapes rounded up to buckets (what CUDA graphs need; testable on CPU)
        self.bucketed = self.cuda_graphs if bucketed is None else (bucketed or self.cuda_graphs)
        self.prefill_tokens = prefill_tokens or (16384 if self.cuda else 2048)
        self.max_queue = max_queue
        self.hf_batch = hf_batch
        self.eos_ids = self._eos_ids()
        self._window_decoder = window_decoder(tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_ids)
        self.vocab = model.get_output_embeddings().weight.shape[0]
        self._rng = random.Random(int.from_bytes(os.urandom(8), "little"))
        self._hf_attention = self.config._attn_implementation
        if self.fast:
            _register_attention()
            self.decoder = model.get_decoder()
            self.lm_head = model.get_output_embeddings()
        self._cache: SlotCache | None = None
        self._graphs: dict[tuple[int, int], tuple] = {}
        self._pool = None
        self._lock = threading.Lock()  # one driver of the model at a time
        self._cond = threading.Condition()
        self._waiting: collections.deque[_Seq] = collections.deque()  # for the slot cache
        self._hf_waiting: collections.deque[_Seq] = collections.deque()  # for HF generate (beams, other models)
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._cancels = False  # a request was cancelled since the last step looked
        self._touched: dict[int, Request] = {}  # requests with news in this step (woken once, at its end)
        self.stats = collections.Counter()

    # ----- loading and prompts

    @classmethod
    def load(
        cls,
        model_dir: str | os.PathLike,
        adapter: str | os.PathLike | None = None,
        *,
        device: str | None = None,
        dtype: str | torch.dtype | None = None,
        **kwargs,
    ) -> Engine:
        """An HF model folder (and optionally a peft adapter, merged in) with its tokenizer.

        Device: CUDA when there is one, else CPU; dtype: bf16 on GPU, fp32 on CPU. The
        tokenizer comes from the adapter folder when it has one (the LoRA stage saves it there
        with the chat template), else from the model folder; one without a chat template gets
        cama's (``cama.chat``).
        """
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model_dir = Path(model_dir)
        if not (model_dir / "config.json").is_file():
            raise CamaError(f"{model_dir}: not a model folder (no config.json)")
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if dtype is None:
            dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        elif isinstance(dtype, str):
            dtype = getattr(torch, dtype)
        tok_dir = Path(adapter) if adapter and (Path(adapter) / "tokenizer_config.json").is_file() else model_dir
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(tok_dir))
            model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype, attn_implementation="sdpa")
        except (OSError, ValueError, KeyError, RuntimeError) as e:
            raise CamaError(f"{model_dir}: the model does not load: {e}") from None
        if adapter:
            from peft import PeftModel

            if not (Path(adapter) / "adapter_config.json").is_file():
                raise CamaError(f"{adapter}: not a peft adapter folder (no adapter_config.json)")
            try:
                model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
            except (OSError, ValueError, KeyError, RuntimeError) as e:
                raise CamaError(f"{adapter}: the adapter does not load onto {model_dir}: {e}") from None
        model.to(device)
        return cls(model, tokenizer, name=str(adapter or model_dir), **kwargs)

    def _eos_ids(self) -> set[int]:
        ids = set()
        for x in (self.tokenizer.eos_token_id, getattr(self.model.generation_config, "eos_token_id", None)):
            if isinstance(x, int):
                ids.add(x)
            elif x:
                ids.update(x)
        if not ids:
            raise CamaError(f"{self.name or 'model'}: the tokenizer defines no EOS token")
        return ids

    def encode(self, prompt) -> list[int]:
        """Token ids of a prompt: a list of chat messages (formatted with the tokenizer's chat
        template, ending with the assistant header), a raw string (with BOS), or token ids."""
        if isinstance(prompt, str):
            ids = self.tokenizer(prompt, add_special_tokens=True)["input_ids"]
        elif isinstance(prompt, Sequence) and prompt and isinstance(prompt[0], dict):
            text = self.tokenizer.apply_chat_template(list(prompt), add_generation_prompt=True, tokenize=False)
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        elif isinstance(prompt, Sequence) and all(isinstance(t, int) for t in prompt):
            ids = list(prompt)
        else:
            raise CamaError(f"a prompt must be a string, a list of chat messages or token ids, not {prompt!r:.80}")
        if not ids:
            raise CamaError("an empty prompt")
        return ids

    # ----- the offline interface

    def generate(
        self,
        prompts: Sequence,
        settings: Settings | str | dict | Sequence[Settings] | None = None,
        on_token: Callable[[int, str], None] | None = None,
    ) -> list[Generation]:
        """Generate for every prompt (batched); results in the order of ``prompts``.

        ``settings``: one for all, or one per prompt. ``on_token(i, piece)`` receives prompt i's
        text as it is decoded; the pieces add up to ``Generation.text`` (unless a run-on tail
        was trimmed at the end, which the result marks).
        """
        if isinstance(settings, Sequence) and not isinstance(settings, str | dict):
            per = [resolve(s) for s in settings]
            if len(per) != len(prompts):
                raise CamaError(f"{len(per)} settings for {len(prompts)} prompts")
        else:
            per = [resolve(settings)] * len(prompts)
        reqs = [
            Request(self.encode(p), s, (lambda piece, i=i: on_token(i, piece)) if on_token else None, stream=False)
            for i, (p, s) in enumerate(zip(prompts, per, strict=True))
        ]
        if not reqs:
            return []
        if self._thread is not None:
            for r in reqs:
                self._enqueue(r, block=True)
            return [r.result() for r in reqs]
        with self._lock:
            self._prepare(max((len(r.prompt_ids) + r.settings.max_new_tokens for r in reqs), default=1), len(reqs))
            seqs = [self._admit(r) for r in reqs]
            seqs = [s for s in seqs if s is not None]
            # longest prompts first: prefill chunks of similar lengths, little padding
            seqs.sort(key=lambda s: -len(s.prompt))
            for seq in seqs:
                self._queue_of(seq).append(seq)
            total, t0, last = len(reqs), time.perf_counter(), time.perf_counter()
            tokens0 = self.stats["tokens"]
            while self._waiting or self._hf_waiting or self._busy():
                self._step()
                if time.perf_counter() - last > 30:
                    last = time.perf_counter()
                    done = sum(r.done for r in reqs)
                    rate = (self.stats["tokens"] - tokens0) / (last - t0)
                    log.info("generate: %d/%d done, %.0f tokens/s", done, total, rate)
        return [r.result() for r in reqs]

    # ----- the online interface

    def start(self, max_length: int | None = None) -> Engine:
        """Start the scheduler thread: ``submit`` from any thread joins the running batch."""
        if self._thread is None:
            self._prepare(max_length or self.max_length, self.max_batch)
            self._stopping = False
            self._thread = threading.Thread(target=self._serve, name="cama-generate", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the scheduler thread; requests still waiting finish as "cancelled"."""
        if self._thread is None:
            return
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join()
        self._thread = None

    def release(self) -> None:
        """Free the slot cache and the CUDA graphs (the engine allocates them again when used)."""
        self.stop()
        with self._lock:
            self._cache = None
            self._graphs.clear()
            self._pool = None
            if self.fast:
                for layer in self.decoder.layers:
                    layer.self_attn.__dict__.pop("_cama_cache", None)
            if self.cuda:
                torch.cuda.empty_cache()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def submit(
        self,
        prompt,
        settings: Settings | str | dict | None = None,
        *,
        on_token: Callable[[str], None] | None = None,
        block: bool = False,
        stream: bool = True,
    ) -> Request:
        """Queue one prompt for the running engine (``start`` first); returns its ``Request``.

        ``stream=False``: only the result is wanted (``req.result()``/``await req.aresult()``); the
        text is decoded once, at the end, instead of piece by piece.
        Raises ``QueueFull`` when ``max_queue`` requests wait already (unless ``block``).
        """
        if self._thread is None:
            raise CamaError("the engine is not started: call engine.start() before submit()")
        req = Request(self.encode(prompt), resolve(settings), on_token, stream=stream)
        self._enqueue(req, block=block)
        return req

    def _enqueue(self, req: Request, block: bool) -> None:
        seq = self._admit(req)
        if seq is None:
            return
        with self._cond:
            while len(self._waiting) + len(self._hf_waiting) >= self.max_queue:
                if not block:
                    raise QueueFull(f"{len(self._waiting) + len(self._hf_waiting)} requests are waiting "
                                    f"(max_queue {self.max_queue})")  # fmt: skip
                self._cond.wait(0.05)
            self._queue_of(seq).append(seq)
            self._cond.notify_all()

    def _queue_of(self, seq: _Seq) -> collections.deque:
        return self._waiting if self.fast and seq.settings.num_beams == 1 else self._hf_waiting

    def _serve(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._hf_waiting and not self._busy() and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    break
            try:
                with self._lock:
                    self._step()
            except Exception as e:  # fail what is in flight, keep serving
                log.exception("generation step failed")
                self._fail_all(f"{type(e).__name__}: {e}")
        self._end_all("cancelled")

    def _fail_all(self, message: str) -> None:
        self._end_all("error", error=message)
        self._graphs.clear()

    def _end_all(self, reason: str, error: str | None = None) -> None:
        """Finish every waiting and running sequence with ``reason``."""
        with self._cond:
            seqs = [*self._waiting, *self._hf_waiting, *(s for s in self._slot_seq if s is not None)]
            self._waiting.clear()
            self._hf_waiting.clear()
            self._cond.notify_all()
        for seq in seqs:
            self._finish(seq, reason, error=error)
        self._deliver()

    # ----- scheduling

    def _admit(self, req: Request) -> _Seq | None:
        """A _Seq for the request, or None when it was answered at once (does not fit)."""
        s = req.settings
        room = (self._cache.length if self._cache is not None else self.max_length) - len(req.prompt_ids)
        if room < 1:
            req._finish(Generation("", "error", len(req.prompt_ids), 0,
                                   error=f"the prompt has {len(req.prompt_ids)} tokens; the context is {len(req.prompt_ids) + room}"))  # fmt: skip
            req._wake()
            return None
        req._engine = self
        seed = s.seed if s.seed is not None else self._rng.getrandbits(32)
        return _Seq(req, min(s.max_new_tokens, room), seed, self.tokenizer, self._window_decoder)

    def _prepare(self, length: int, batch: int) -> None:
        """Make sure the slot cache holds ``batch`` sequences of ``length`` tokens."""
        if not self.fast:
            self._slot_seq = []
            return
        length = min(self.max_length, -(-length // 64) * 64)
        slots = min(self.max_batch, max(batch, 1))
        c = self._cache
        if c is not None and c.length >= length and c.slots >= slots:
            return
        if c is not None:
            length, slots = max(length, c.length), max(slots, c.slots)
        self._cache = None
        self._graphs.clear()
        if self.cuda:
            torch.cuda.empty_cache()
            slots = self._fit_slots(slots, length)
        self._cache = cache = SlotCache(self.config, slots, length, self.dtype, self.device)
        dev = self.device
        self._slot_seq: list[_Seq | None] = [None] * slots
        self._free = list(range(slots))  # kept sorted: the lowest free slot first
        self._tok = torch.zeros(slots, dtype=torch.long, device=dev)
        self._pos = torch.zeros(slots, dtype=torch.long, device=dev)
        self._active = torch.zeros(slots, dtype=torch.long, device=dev)
        self._arange = torch.arange(max(slots, length), device=dev)
        self._seen = torch.zeros(slots, self.vocab, dtype=torch.bool, device=dev)
        self._temp = torch.zeros(slots, dtype=torch.float32, device=dev)
        self._top_k = torch.zeros(slots, dtype=torch.long, device=dev)
        self._top_p = torch.ones(slots, dtype=torch.float32, device=dev)
        self._penalty = torch.ones(slots, dtype=torch.float32, device=dev)
        self._seed = torch.zeros(slots, dtype=torch.long, device=dev)
        self._step_no = torch.zeros(slots, dtype=torch.long, device=dev)
        self._special: set[int] = set()  # slots that sample or penalise (not plain greedy)
        self._penal: set[int] = set()  # slots with a repetition penalty
        # host-side bookkeeping, vectorised over slots (one numpy pass per step, not per token)
        self._occupied = np.zeros(slots, dtype=bool)
        self._pos_np = np.zeros(slots, dtype=np.int64)  # position of each slot's next input token
        self._count = np.zeros(slots, dtype=np.int64)  # tokens generated (EOS not counted)
        self._limit = np.zeros(slots, dtype=np.int64)  # max_new of the slot's sequence
        self._streamed = np.zeros(slots, dtype=bool)  # has a TextStream: handled token by token
        self._outbuf = np.zeros((slots, length), dtype=np.int64)
        self._eos_np = np.array(sorted(self.eos_ids), dtype=np.int64)
        self._sampler = Sampler(self.vocab, dev)
        self._batch_buckets = _buckets(slots, 1)
        self._span_buckets = _buckets(length, 64)
        log.info("slot cache: %d slots x %d tokens, %.2f GB (%s, %s)%s", slots, length, cache.bytes / 1e9,
                 self.device, str(self.dtype).replace("torch.", ""), ", CUDA graphs" if self.cuda_graphs else "")  # fmt: skip

    def _fit_slots(self, slots: int, length: int) -> int:
        """At most the slots whose cache fits in half the free GPU memory."""
        free, _ = torch.cuda.mem_get_info(self.device)
        cfg = self.config
        kv_heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        per_slot = 2 * cfg.num_hidden_layers * kv_heads * head_dim * length * torch.finfo(self.dtype).bits // 8
        fit = max(1, int(0.5 * free // per_slot))
        if fit < slots:
            log.warning("slot cache: %d slots of %d tokens fit in half the free memory (asked %d)", fit, length, slots)
        return min(slots, fit)

    def _busy(self) -> bool:
        return bool(self._occupied.any()) if self.fast and self._cache is not None else False

    def _step(self) -> None:
        """Admit waiting sequences into free slots (prefill), then decode one token for all."""
        if self._hf_waiting:
            with self._cond:
                hf = list(self._hf_waiting)
                self._hf_waiting.clear()
                self._cond.notify_all()
            self._hf_generate(hf)
            self._deliver()
            return
        if not self.fast:
            return
        if self._cancels:  # set by Request.cancel: no scan of the slots on the other steps
            self._cancels = False
            for seq in [s for s in self._slot_seq if s is not None and s.req._cancelled]:
                self._finish(seq, "cancelled")
        n_active, n_wait = int(self._occupied.sum()), len(self._waiting)
        refill = max(1, self._cache.slots // 8)
        if n_wait and self._free and (n_active == 0 or len(self._free) >= min(n_wait, refill)):
            self._prefill()
        if self._occupied.any():
            self._decode()
        self._deliver()

    def _prefill(self) -> None:
        """Prefill waiting sequences into free slots, in chunks of at most prefill_tokens."""
        with self._cond:
            take = []
            while self._waiting and len(take) < len(self._free):
                seq = self._waiting.popleft()
                if seq.req._cancelled:
                    self._finish(seq, "cancelled")
                    continue
                take.append(seq)
            self._cond.notify_all()
        take.sort(key=lambda s: len(s.prompt))
        chunk: list[_Seq] = []
        for seq in take:
            if chunk and len(seq.prompt) * (len(chunk) + 1) > self.prefill_tokens:
                self._prefill_chunk(chunk)
                chunk = []
            chunk.append(seq)
        if chunk:
            self._prefill_chunk(chunk)

    def _place(self, seq: _Seq) -> int:
        slot = self._free.pop(0)
        seq.slot = slot
        self._slot_seq[slot] = seq
        self._occupied[slot] = True
        self._count[slot] = 0
        self._limit[slot] = seq.max_new
        self._streamed[slot] = seq.stream is not None
        self._pos_np[slot] = len(seq.prompt)
        s = seq.settings
        if s.sample or s.repetition_penalty != 1.0:
            self._special.add(slot)
        if s.repetition_penalty != 1.0:
            self._penal.add(slot)
        return slot

    @torch.inference_mode()
    def _prefill_chunk(self, seqs: list[_Seq]) -> None:
        dev = self.device
        n, width = len(seqs), max(len(s.prompt) for s in seqs)
        ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, : len(s.prompt)] = torch.tensor(s.prompt)
        slots = [self._place(s) for s in seqs]
        rows = torch.tensor(slots, device=dev)
        lens = torch.tensor([len(s.prompt) for s in seqs], device=dev)
        cache = self._cache
        cache.mode, cache.rows = "prefill", rows
        ids = ids.to(dev)
        hidden = self._run_decoder(ids, self._arange[:width].expand(n, width))
        last = hidden[torch.arange(n, device=dev), lens - 1]
        logits = self.lm_head(last).float()
        # per-row settings
        st = [s.settings for s in seqs]
        self._temp[rows] = torch.tensor([x.temperature for x in st], device=dev)
        self._top_k[rows] = torch.tensor([x.top_k for x in st], device=dev)
        self._top_p[rows] = torch.tensor([x.top_p for x in st], device=dev, dtype=torch.float32)
        self._penalty[rows] = torch.tensor([x.repetition_penalty for x in st], device=dev, dtype=torch.float32)
        self._seed[rows] = torch.tensor([s.seed for s in seqs], device=dev)
        self._step_no[rows] = 0
        self._seen[rows] = False
        penal = [i for i, x in enumerate(st) if x.repetition_penalty != 1.0]
        if penal:  # the penalty covers the prompt, as HF's does
            r = torch.tensor([slots[i] for i in penal for _ in seqs[i].prompt], device=dev)
            t = torch.tensor([tok for i in penal for tok in seqs[i].prompt], device=dev)
            self._seen[r, t] = True
        special = [i for i, s in enumerate(slots) if s in self._special]
        nxt = logits.argmax(-1)
        if special:
            sel = torch.tensor(special, device=dev)
            nxt[sel] = self._choose(logits[sel], [slots[i] for i in special])
        self._tok[rows] = nxt
        self._pos[rows] = lens
        self._active[rows] = 1
        self._advance(nxt, rows, np.arange(n), np.array(slots))
        self.stats["prefill_tokens"] += int(lens.sum())
        self.stats["prefill_calls"] += 1

    def _run_decoder(self, ids, positions):
        """The HF decoder's last hidden states, with our attention."""
        if getattr(self.decoder.layers[0].self_attn, "_cama_cache", None) is not self._cache:
            for layer in self.decoder.layers:  # (another engine may share this model)
                layer.self_attn._cama_cache = self._cache
        impl = self.config._attn_implementation
        self.config._attn_implementation = ATTENTION
        try:
            return self.decoder(input_ids=ids, position_ids=positions, use_cache=False).last_hidden_state
        finally:
            self.config._attn_implementation = impl

    def _choose(self, logits, slots: list[int]):
        """Tokens for rows that penalise or sample: HF's processors, then argmax or a draw."""
        rows = torch.tensor(slots, device=self.device)
        if any(s in self._penal for s in slots):
            logits = Sampler.penalise(logits, self._seen[rows], self._penalty[rows])
        greedy = logits.argmax(-1)
        if not any(self._slot_seq[s].settings.sample for s in slots):
            return greedy
        temp = self._temp[rows]
        warped = self._sampler.warp(logits, temp.clamp(min=1e-6), self._top_k[rows], self._top_p[rows])
        drawn = self._sampler.draw(warped, self._seed[rows], self._step_no[rows])
        return torch.where(temp > 0, drawn, greedy)

    def _decode_fn(self, b: int, span: int):
        """One decode step for slots [0, b) attending to positions [0, span)."""
        cache = self._cache
        cache.mode, cache.rows, cache.pos, cache.span = "decode", self._arange[:b], self._pos[:b], span
        visible = self._arange[:span][None, :] <= self._pos[:b, None]  # (b, span)
        zero = torch.zeros((), dtype=self.dtype, device=self.device)
        cache.mask = torch.where(visible, zero, float("-inf")).to(self.dtype)[:, None, None, :]
        hidden = self._run_decoder(self._tok[:b, None], self._pos[:b, None])
        logits = self.lm_head(hidden[:, -1]).float()
        return logits, logits.argmax(-1)

    def _graph(self, b: int, span: int):
        key = (b, span)
        if key not in self._graphs:
            if self._pool is None:
                self._pool = torch.cuda.graph_pool_handle()
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):  # warm up (the step is idempotent: same writes, same result)
                for _ in range(2):
                    self._decode_fn(b, span)
            torch.cuda.current_stream(self.device).wait_stream(side)
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g, pool=self._pool, capture_error_mode="thread_local"):
                out = self._decode_fn(b, span)
            self._graphs[key] = (g, out)
            self.stats["graphs"] += 1
        g, out = self._graphs[key]
        g.replay()
        return out

    @torch.inference_mode()
    def _decode(self) -> None:
        occupied = np.flatnonzero(self._occupied)
        hi = int(occupied[-1]) + 1
        need = int(self._pos_np[occupied].max()) + 1
        if self.bucketed:
            b = next(x for x in self._batch_buckets if x >= hi)
            span = next(x for x in self._span_buckets if x >= need)
        else:
            b, span = hi, need
        if self.cuda_graphs:
            try:
                logits, nxt = self._graph(b, span)
            except RuntimeError as e:  # a model that cannot be captured runs eagerly
                log.warning("CUDA graph capture failed (%s); decoding without graphs", e)
                self.cuda_graphs = False
                self._graphs.clear()
                return self._decode()
        else:
            logits, nxt = self._decode_fn(b, span)
        special = sorted(self._special)
        if special:
            nxt = nxt.clone()
            sel = torch.tensor(special, device=self.device)
            nxt[sel] = self._choose(logits[sel], special)
        self._tok[:b] = torch.where(self._active[:b].bool(), nxt, self._tok[:b])
        self._pos[:b] += self._active[:b]
        self._step_no[:b] += self._active[:b]
        self._pos_np[occupied] += 1
        self._advance(nxt, self._arange[:b], occupied, occupied)
        self.stats["decode_steps"] += 1
        self.stats["decode_rows"] += b

    def _advance(self, nxt, rows, idx: np.ndarray, slots: np.ndarray) -> None:
        """Hand slot ``slots[j]`` its new token ``nxt[idx[j]]`` (``rows``: the slot of each entry
        of ``nxt``): EOS, the length limit, and for streamed or stop-string sequences the text."""
        if self._penal:
            self._seen[rows, nxt] = True
        toks = nxt.cpu().numpy()[idx]  # the one sync per step
        self.stats["tokens"] += len(slots)
        count = self._count[slots]
        self._outbuf[slots, count] = toks
        eos = np.isin(toks, self._eos_np)
        self._count[slots] = count + ~eos
        full = ~eos & (count + 1 >= self._limit[slots])
        for j in np.flatnonzero(eos | full | self._streamed[slots]):
            seq = self._slot_seq[int(slots[j])]
            if eos[j]:
                self._finish(seq, "eos", eos=True)
                continue
            if seq.stream is not None:
                if seq.stream.push(int(toks[j])):
                    self._finish(seq, "stop")
                    continue
                if seq.req.streaming and seq.req._emit(seq.stream.ready()):
                    self._touched[seq.req.id] = seq.req
            if full[j]:
                self._finish(seq, "length")

    def _deliver(self) -> None:
        """Wake the asyncio consumers of this step's news: one call into each event loop per
        step, not one per request and token."""
        if not self._touched:
            return
        touched, self._touched = self._touched, {}
        wake: dict = {}
        for req in touched.values():
            if (waker := req._waker) is not None:
                wake.setdefault(waker[0], []).append(waker[1])
        for loop, events in wake.items():
            try:
                loop.call_soon_threadsafe(_set_all, events)
            except RuntimeError:  # the loop is closed: nobody listens
                pass

    def _finish(self, seq: _Seq, reason: str, eos: bool = False, error: str | None = None) -> None:
        if seq.slot is not None:
            seq.out = self._outbuf[seq.slot, : self._count[seq.slot]].tolist()
        ids, trimmed = seq.out, False
        if reason == "stop":
            text = seq.stream.text
        else:
            if reason == "length" and seq.settings.trim_repetition:
                ids, trimmed = trim_repetition(seq.out)
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
        if seq.req.streaming and seq.stream is not None:
            seq.req._emit(seq.stream.flush(text))
        elif seq.req.streaming:
            seq.req._emit(text)
        gen = Generation(text, reason, len(seq.prompt), len(seq.out) + eos, trimmed, list(seq.out), error)
        if seq.slot is not None:
            slot = seq.slot
            self._slot_seq[slot] = None
            self._occupied[slot] = False
            self._streamed[slot] = False
            self._special.discard(slot)
            self._penal.discard(slot)
            self._active[slot] = 0
            self._pos[slot] = 0
            self._pos_np[slot] = 0
            self._free.append(slot)
            self._free.sort()
            seq.slot = None
        self.stats[f"finish_{reason}"] += 1
        seq.req._finish(gen)
        self._touched[seq.req.id] = seq.req

    # ----- beam search and models without the fast path: HF generate

    @torch.inference_mode()
    def _hf_generate(self, seqs: list[_Seq]) -> None:
        """Batches of left-padded, length-sorted prompts through ``model.generate``."""
        groups = collections.defaultdict(list)
        for s in seqs:
            groups[(s.settings, s.max_new)].append(s)
        for (st, max_new), group in groups.items():
            group.sort(key=lambda s: len(s.prompt))
            for b in range(0, len(group), self.hf_batch):
                self._hf_batch(group[b : b + self.hf_batch], st, max_new)

    def _hf_batch(self, seqs: list[_Seq], st: Settings, max_new: int) -> None:
        dev = self.device
        width = max(len(s.prompt) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, width - len(s.prompt) :] = torch.tensor(s.prompt)
            mask[i, width - len(s.prompt) :] = 1
        kwargs = dict(max_new_tokens=max_new, num_beams=st.num_beams, repetition_penalty=st.repetition_penalty,
                      eos_token_id=sorted(self.eos_ids), pad_token_id=self.pad_id)  # fmt: skip
        if st.sample:
            kwargs.update(do_sample=True, temperature=st.temperature, top_p=st.top_p, top_k=st.top_k)
            torch.manual_seed(seqs[0].seed)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if st.stop:
            kwargs.update(stop_strings=list(st.stop), tokenizer=self.tokenizer)
        out = self.model.generate(input_ids=ids.to(dev), attention_mask=mask.to(dev), **kwargs)
        for i, s in enumerate(seqs):
            gen = out[i, width:].tolist()
            ended = next((k for k, t in enumerate(gen) if t in self.eos_ids), None)
            s.out = gen[:ended] if ended is not None else gen
            self.stats["tokens"] += len(s.out) + (ended is not None)
            reason = "eos" if ended is not None else "length"
            s.stream = None
            if st.stop:  # HF stops after the stop string; the text ends before it
                text = self.tokenizer.decode(s.out, skip_special_tokens=True)
                hits = [k for x in st.stop if (k := text.find(x)) >= 0]
                if hits:
                    s.stream = TextStream(self.tokenizer, st.stop)
                    s.stream.text = text[: min(hits)]
                    reason = "stop"
            self._finish(s, reason, eos=ended is not None)

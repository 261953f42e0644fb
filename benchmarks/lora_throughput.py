"""GPU benchmark: LoRA real tokens/s, LoRA MFU and peak memory, ours against the peers, in one call.

The setting is the one of ``../shared/baselines/gpu_lora_peers_baseline.py`` (whose peers are
copied below, attributed, so this file runs without ``shared/``): peft LoRA r16/α32/dropout
0.05 on the 7 projections of a random-init TinyLlama-1.1B shape (22 layers, hidden 2048, 32
heads, 4 KV heads, intermediate 5632, vocabulary 32000) in bf16, lr 3e-4, instruction lengths
lognormal around 180 tokens cut to [32, 512], the loss on the second half of each example.
Every variant trains on the same examples (drawn once, seeded) from the same base weights.
The tokens are Zipf-distributed rather than uniform, so the loss falls and the loss curves
say something; token values do not change the speed.

Peers (the issue's table; measured with the baseline's own clock, a sync after every step):

- ``peer_padded_mb4``, ``peer_padded_mb16``: alpaca-lora style, padded to the longest of the micro-batch;
- ``peer_padfree_sdpa_mb16``: ``DataCollatorWithFlattening``, SDPA (a dense block mask from the position ids);
- ``peer_padfree_flex_mb16``: the same with ``flex_attention``: the strongest peer (13,370 real tokens/s, 13.8 GB).

Ours, through the stage itself (``cama.lora.train.train_lora`` on the training core, the
HF Trainer), timed by the stage's own logs (each log is a sync; the first interval, with
compilation, is dropped):

- ``ours``: the stage's GPU default: rows of 4096 tokens packed from several examples,
  FlexAttention with a document block mask, compiled blocks (adapters inside), the fused
  answer-only loss, non-blocking copies, 6 rows (≈ the seed's 128 examples) a step;
- ``ours_varlen``: attention by torch's FlashAttention varlen kernel instead of FlexAttention;
- ``ours_eager``: no compiled blocks;
- ``ours_plainloss``: the loss through plain logits (no chunking, every answer position's logits at once);
- ``ours_8k``: rows of 8192 tokens (twice the work per forward, twice the activations);
- ``ours_ckpt16k``: activation checkpointing, rows of 16384 tokens;
- ``ours_liger``: uncompiled, with Liger's RMSNorm/SwiGLU/RoPE kernels (skipped unless
  ``liger_kernel`` imports: carry its wheel);
- ``ours_mb2``: 2 rows of 4096 a forward (``train.micro_batch_size`` 2: one sequence of 8192
  tokens, each example still attending to itself), the same 6 rows a step as ``ours``: more
  work per forward, the same recipe;
- ``ours_bf16``: the adapters held in bf16 (``lora.adapter_dtype: base``), so no adapter casts
  its input to fp32 and back; **changes the recipe**: AdamW updates bf16 weights;
- ``ours_nodrop``: LoRA dropout 0 (the seed's is 0.05), so no projection draws a dropout mask
  or keeps its own dropped copy of the input; **changes the recipe**. (Dropout once per
  shared input, for q/k/v and gate/up, is not a peft setting: not measured);
- ``ours_lean``: ``ours_mb2``, ``ours_bf16`` and ``ours_nodrop`` together: what the three
  suspects are worth at most, together;
- ``ours_match``: the loss-curve check: the peer's exact batches (16 examples a step, in the
  Trainer's RandomSampler order), packed into one row each, logging every step; its curve is
  compared with ``peer_padfree_flex_mb16``'s, whose schedule is set to ours (cosine, no
  warm-up: a schedule does not change speed).

**LoRA MFU** = real tokens/s × F / peak (H100/H200: 989 TFLOP/s dense bf16), with F, per real
token, the work the task needs (``cama.lora.train.lora_flops_per_token``):
4·N_body + 4·V·d·f + 6·N_lora + 6·L·d·s, where N_body is the frozen matmul parameters
without the head (forward 2N, input gradient 2N: a frozen weight needs no weight gradient,
the adapters below it need the input gradient), V·d the head, counted only on the fraction
f of positions that predict an answer token (the loss needs no other logits; 0.5 here),
N_lora the adapters (forward and both gradients, 6 each), and s = Σn²/Σn the mean span of a
token's causal attention, within its own example. For this shape F ≈ 4.1 GFLOP a token, so
13.4k tokens/s is 5.6 % and 40k is 16.6 %. The same F scores every variant: a path that
computes more (padding, all logits, recomputation) is not credited for it.

**Recompiles.** Each variant's JSON line has ``recompiles`` (dynamo's own count, from its
``recompiles`` log), ``recompiles_timed`` (those after the first logged interval, i.e. inside
the timed steps), the first reasons, ``graphs`` and ``graph_breaks``. On the CPU (torch 2.13,
``--smoke --compile-cpu``: the blocks compiled with the ``aot_eager`` backend, so dynamo's
guards are the GPU's, without inductor) ``ours`` recompiles twice, both at its first step: the
evaluation at step 0 compiled the no-gradient graph, and the first block's input does not
require a gradient while the others' do; then never, whatever example boundaries a new row
brings (``recompiles_timed`` 0, no graph break). The flex path (the GPU's; not run through
the stage on a CPU) recompiles once more, at the second step: the ``kernels`` package's
context variable (transformers' kernel-hub wrapper around attention) is left set after the
first compiled forward there (not on sdpa), so its guard fails once.
``tests/lora/test_compiled_blocks.py`` checks both paths.

**``--profile [VARIANTS]``** (default ``ours``): for those variants only, torch.profiler
(kernels only on a GPU, no shapes or stacks) over the 2 steps right after the last logged
interval that the throughput keeps, then the run stops; it prints the GPU time per step by
kind and the 25 costliest kernels (CPU: ops by self time), and the share of the window in
which the device ran nothing (host gaps: launch overhead, syncs, the data loader, Python).
The summary is abandoned after ``--profile-cap`` seconds, and a variant killed by
``--timeout`` still shows what it printed.

Run (each variant in its own process, so one crash or OOM does not stop the rest; a JSON
line per variant, then a table with ratios to the strongest peer)::

    PYTHONPATH=src python benchmarks/lora_throughput.py                 # all: ~22 min on one H200, so in calls of < 10 min:
    PYTHONPATH=src python benchmarks/lora_throughput.py --variants peer_padded_mb4,peer_padded_mb16,peer_padfree_sdpa_mb16,peer_padfree_flex_mb16,ours,ours_match
    PYTHONPATH=src python benchmarks/lora_throughput.py --variants peer_padfree_flex_mb16,ours_varlen,ours_eager,ours_plainloss,ours_8k,ours_ckpt16k,ours_liger
    PYTHONPATH=src python benchmarks/lora_throughput.py --variants ours,peer_padfree_flex_mb16
    PYTHONPATH=src python benchmarks/lora_throughput.py --smoke         # CPU, a tiny model: 3 variants
    PYTHONPATH=src python benchmarks/lora_throughput.py --smoke --variants ours_eager,ours_8k   # any of them
    PYTHONPATH=src python benchmarks/lora_throughput.py --smoke --compile-cpu --variants ours,ours_lean --profile ours

Needs torch, transformers, peft, accelerate, numpy, pyyaml (no DeepSpeed: the core imports it
only for ZeRO; no pyarrow or jsonschema: examples travel as .npz and the settings are built
over the schema's defaults); liger-kernel for ``ours_liger`` only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

SHAPE = dict(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
             num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=8192)  # fmt: skip
SMOKE_SHAPE = dict(vocab_size=1000, hidden_size=64, intermediate_size=172, num_hidden_layers=2,
                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024)  # fmt: skip
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
PEERS = ("peer_padded_mb4", "peer_padded_mb16", "peer_padfree_sdpa_mb16", "peer_padfree_flex_mb16")
OURS = ("ours", "ours_varlen", "ours_eager", "ours_plainloss", "ours_8k", "ours_ckpt16k", "ours_liger", "ours_mb2",
        "ours_bf16", "ours_nodrop", "ours_lean", "ours_match")  # fmt: skip
STRONGEST = "peer_padfree_flex_mb16"
PEER_SEED = 42  # TrainingArguments' default seed: the peers' RandomSampler order


def scale(smoke: bool) -> dict:
    if smoke:
        return dict(shape=SMOKE_SHAPE, n=300, mean=40, lo=8, hi=96, peer_steps=8, peer_warm=2, pack=512,
                    ours_steps=6, log=2, match_steps=8, mb=4)  # fmt: skip
    return dict(shape=SHAPE, n=20000, mean=180, lo=32, hi=512, peer_steps=60, peer_warm=10, pack=4096,
                ours_steps=25, log=5, match_steps=60, mb=16)  # fmt: skip


# ----------------------------------------------------------------------------- shared data


def draw_examples(sc: dict, seed: int = 0):
    """Lengths lognormal around ``mean`` (the baselines' draw), Zipf tokens, loss on the second half."""
    import numpy as np

    from cama.lora.data import Example

    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.lognormal(mean=np.log(sc["mean"]), sigma=0.6, size=sc["n"]).astype(int), sc["lo"], sc["hi"])
    vocab = sc["shape"]["vocab_size"]
    out = []
    for i, n in enumerate(lengths):
        ids = (3 + (rng.zipf(1.2, int(n)) - 1) % (vocab - 3)).astype(np.int32)
        out.append(Example(f"ex{i}", ids, np.arange(n) >= n // 2))
    return out


def save_examples(path: Path, examples) -> None:
    """The examples as one .npz (ids, masks, lengths): no pyarrow needed on the GPU image."""
    import numpy as np

    np.savez(path, ids=np.concatenate([e.input_ids for e in examples]), mask=np.concatenate([e.mask for e in examples]),
             lengths=np.array([len(e) for e in examples]))  # fmt: skip


def load_examples(path: Path):
    import numpy as np

    from cama.lora.data import Example

    z = np.load(path)
    ends = np.cumsum(z["lengths"])
    return [Example(f"ex{i}", z["ids"][e - n : e], z["mask"][e - n : e]) for i, (n, e) in enumerate(zip(z["lengths"], ends, strict=True))]


def prepare(work: Path, sc: dict) -> None:
    """The base model folder (random init, bf16) and the tokenized examples, written once."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if (work / "ready").exists():
        return
    torch.manual_seed(0)
    cfg = LlamaConfig(**sc["shape"], pad_token_id=0, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = LlamaForCausalLM(cfg)
    model.to(torch.bfloat16).save_pretrained(str(work / "base"))
    save_examples(work / "examples.npz", draw_examples(sc))
    (work / "ready").touch()


def peer_order(n: int, seed: int = PEER_SEED) -> list[int]:
    """The Trainer's default RandomSampler order (as the peers baseline reconstructs it)."""
    import torch

    g = torch.Generator()
    g.manual_seed(seed)
    return torch.randperm(n, generator=g).tolist()


# ----------------------------------------------------------------------------- the peers
# From ../shared/baselines/gpu_lora_peers_baseline.py (cama's shared baselines), kept as it
# measures: the HF Trainer, per_device_train_batch_size = MB, a clock synced after every step.
# Changes: the examples are the shared draw above instead of fresh random tokens per item, the
# base is loaded from the shared folder, and the schedule is ours (cosine) so curves compare.


def run_peer(name: str, work: Path, sc: dict) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import (
        AutoModelForCausalLM,
        DataCollatorWithFlattening,
        Trainer,
        TrainerCallback,
        TrainingArguments,  # fmt: skip
    )

    variant = "padded" if "padded" in name else "padfree"
    mb = int(name.rsplit("mb", 1)[1]) if not sc.get("smoke") else sc["mb"]
    attn = "flex_attention" if "flex" in name else "sdpa"
    cuda = torch.cuda.is_available()
    if attn == "flex_attention" and not cuda:
        attn = "sdpa"  # FlexAttention has no CPU backward; the smoke run keeps the peer's shape
    examples = load_examples(work / "examples.npz")
    lengths = [len(e) for e in examples]
    steps, warm = sc["peer_steps"], sc["peer_warm"]

    class DS(torch.utils.data.Dataset):
        def __len__(self):
            return len(examples)

        def __getitem__(self, i):
            e = examples[i]
            ids = e.input_ids.tolist()
            n = len(ids)
            return {"input_ids": ids, "labels": [-100] * (n // 2) + ids[n // 2 :]}

    def pad_collate(feats):
        m = max(len(f["input_ids"]) for f in feats)
        ids = [f["input_ids"] + [0] * (m - len(f["input_ids"])) for f in feats]
        att = [[1] * len(f["input_ids"]) + [0] * (m - len(f["input_ids"])) for f in feats]
        lab = [f["labels"] + [-100] * (m - len(f["labels"])) for f in feats]
        return {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(att), "labels": torch.tensor(lab)}

    class Clock(TrainerCallback):
        def __init__(self):
            self.t = {}

        def on_step_end(self, args, state, control, **kw):
            if cuda:
                torch.cuda.synchronize()
            self.t[state.global_step] = time.perf_counter()

    dtype = torch.bfloat16 if cuda else torch.float32
    model = AutoModelForCausalLM.from_pretrained(str(work / "base"), dtype=dtype, attn_implementation=attn)
    torch.manual_seed(0)  # as the stage seeds (lora.train.seed 0) right before peft draws the A matrices
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, task_type="CAUSAL_LM",
                                             target_modules=TARGETS))  # fmt: skip
    collate = pad_collate if variant == "padded" else DataCollatorWithFlattening()
    clock = Clock()
    args = TrainingArguments(output_dir=str(work / f"out_{name}"), per_device_train_batch_size=mb, max_steps=steps,
                             bf16=cuda, logging_steps=1, save_strategy="no", report_to=[], learning_rate=3e-4,
                             lr_scheduler_type="cosine", warmup_steps=0, weight_decay=0.0, seed=PEER_SEED,
                             dataloader_num_workers=2 if cuda else 0, remove_unused_columns=False,
                             use_cpu=not cuda, disable_tqdm=True)  # fmt: skip
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    trainer = Trainer(model=model, args=args, train_dataset=DS(), data_collator=collate, callbacks=[clock])
    trainer.train()
    order = peer_order(len(lengths))
    real = padded = 0
    for s in range(warm, steps):
        batch = [lengths[i] for i in order[s * mb : (s + 1) * mb]]
        real += sum(batch)
        padded += (max(batch) * len(batch)) if variant == "padded" else sum(batch)
    dt = clock.t[steps] - clock.t[warm]
    return {
        "variant": name, "micro_batch": mb, "attn": attn,
        "real_tokens_per_s": round(real / dt), "padded_tokens_per_s": round(padded / dt),
        "pad_fraction": round(1 - real / padded, 3),
        "max_mem_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
        "loss_curve": [round(h["loss"], 4) for h in trainer.state.log_history if "loss" in h],
    }  # fmt: skip


# ----------------------------------------------------------------------------- ours


def our_settings(name: str, sc: dict, steps: int) -> dict:
    """The ``lora`` section for a variant (the stage's defaults, then the variant's changes)."""
    pack = sc["pack"]
    train = {"max_steps": steps, "micro_batch_size": 1, "global_batch_size": 6, "lr": 3e-4, "warmup_steps": 0,
             "save_steps": 10**6, "logging_steps": sc["log"], "dataloader_workers": 2, "torch_compile": True,
             "seed": 0}  # fmt: skip
    lora = {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": TARGETS, "cutoff_len": sc["hi"],
            "pack_length": pack, "attention": "auto", "eval_steps": 10**6}  # fmt: skip
    if name == "ours_varlen":
        lora["attention"] = "varlen"
    elif name in ("ours_eager", "ours_liger"):
        train["torch_compile"] = False
    elif name == "ours_plainloss":
        lora["fused_loss"] = False
    elif name == "ours_8k":
        lora["pack_length"] = 2 * pack
    elif name == "ours_ckpt16k":
        lora["pack_length"], train["gradient_checkpointing"] = 4 * pack, True
    elif name == "ours_match":
        lora["pack_length"] = sc["mb"] * sc["hi"]  # any 16 examples fit one row
        train.update(global_batch_size=1, logging_steps=1, warmup_steps=0)
    if name in ("ours_mb2", "ours_lean"):
        train["micro_batch_size"] = 2  # 3 micro-batches of 2 rows: still 6 rows a step
    if name in ("ours_bf16", "ours_lean"):
        lora["adapter_dtype"] = "base"
    if name in ("ours_nodrop", "ours_lean"):
        lora["dropout"] = 0.0
    if sc.get("smoke"):
        train["dataloader_workers"] = 0
        if lora["attention"] == "varlen":
            lora["attention"] = "sdpa"
    return {**lora, "train": train}


def run_ours(name: str, work: Path, sc: dict) -> dict:
    import torch

    from cama.lora.settings import from_values
    from cama.lora.train import train_lora

    if name == "ours_liger":
        from liger_kernel.transformers import apply_liger_kernel_to_llama  # ImportError: skipped

        apply_liger_kernel_to_llama(rope=True, rms_norm=True, swiglu=True, cross_entropy=False,
                                    fused_linear_cross_entropy=False)  # fmt: skip
    steps = sc["match_steps"] if name == "ours_match" else sc["ours_steps"]
    settings = from_values(our_settings(name, sc, steps))  # over the schema's defaults, no jsonschema needed
    examples = load_examples(work / "examples.npz")
    rows = None
    if name == "ours_match":  # the peer's batches: step s trains order[s·MB : (s+1)·MB]
        order, mb = peer_order(len(examples)), sc["mb"]
        rows = [order[s * mb : (s + 1) * mb] for s in range(steps)]
    out = work / f"out_{name}"
    shutil.rmtree(out, ignore_errors=True)  # a rerun in the same --work would resume its finished checkpoint
    log_every = settings.train["logging_steps"]
    callbacks = [DYNAMO.step_callback()] if DYNAMO else []
    profiled = None  # --profile: the 2 steps after the last logged interval that counts, then stop
    if name in os.environ.get("CAMA_BENCH_PROFILE", "").split(",") and name != "ours_match":
        last = max((steps // log_every - 1) * log_every, log_every)
        profiled = (last + 1, last + 2)
        callbacks.append(profiler(start=last, steps=2, cap_s=float(os.environ.get("CAMA_BENCH_PROFILE_CAP", 90))))
    t0 = time.perf_counter()
    with cpu_compile(sc.get("compile_cpu")):
        stats = train_lora(data_dir=work, base_model=work / "base", out_adapter=out / "adapter", checkpoint_dir=out / "ckpt",
                           settings=settings, rows=rows, examples=(examples, examples[:8]), callbacks=tuple(callbacks))  # fmt: skip
    if profiled:
        print(f"wall per step, whole run: {(time.perf_counter() - t0) / profiled[1] * 1e3:.0f} ms", flush=True)
    timed = [r for r in stats["loss_curve"] if "tokens_per_s" in r][1:]  # the first interval compiles
    if profiled:
        timed = [r for r in timed if r["step"] < profiled[0]] or timed  # (smoke: too few steps to leave them out)
    tok_s = sum(r["tokens_per_s"] for r in timed) / max(len(timed), 1)
    mfus = [r["mfu"] for r in timed if "mfu" in r]
    compiled = settings.train["torch_compile"] and (torch.cuda.is_available() or bool(sc.get("compile_cpu")))
    return {
        "variant": name, "attention": stats["attention"], "compile": compiled,
        "pack_length": settings.pack_length, "rows_per_step": stats["global_batch_size"],
        "micro_batch": settings.train["micro_batch_size"], "dropout": settings.dropout, "adapter_dtype": settings.adapter_dtype,
        "profiled_steps": profiled,
        "real_tokens_per_s": round(tok_s), "mfu": round(sum(mfus) / len(mfus), 4) if mfus else None,
        "flops_per_token": stats["flops_per_token"], "fill": stats["packing"]["fill"],
        "max_mem_gb": stats["peak_memory_gb"] if torch.cuda.is_available() else None,
        "loss_curve": [round(r["loss"], 4) for r in stats["loss_curve"]],
    }  # fmt: skip


# ----------------------------------------------------------------------------- recompiles, the profile


class DynamoCounts:
    """Dynamo's recompiles (each with the training step it happened at and its first guard failure),
    graphs and graph breaks in this process, from dynamo's own ``recompiles`` log and counters."""

    def __init__(self):
        import logging

        import torch
        import torch._dynamo.guards  # noqa: F401  (registers the artifact logger)
        from torch._dynamo.utils import counters

        torch._dynamo.reset()  # smoke runs every variant in one process: count each from zero
        counters.clear()
        self.step, self.events = 0, []
        torch._logging.set_logs(recompiles=True)  # also printed by torch's own handler (stderr)
        self.handler = logging.Handler()
        self.handler.emit = lambda record: self.events.append((self.step, record.getMessage()))
        self.loggers = [logging.getLogger(n) for n in list(logging.root.manager.loggerDict) if n.endswith(".__recompiles")]
        for lg in self.loggers:
            lg.addHandler(self.handler)

    def step_callback(self):
        from transformers import TrainerCallback

        counts = self

        class Step(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                counts.step = state.global_step + 1

        return Step()

    def result(self, after_step: int | None) -> dict:
        from torch._dynamo.utils import counters

        for lg in self.loggers:
            lg.removeHandler(self.handler)

        def reason(msg: str) -> str:
            lines = msg.splitlines()
            fn = lines[0].replace("Recompiling function ", "").split(" in ")[0] if lines else "?"
            first = next((ln.strip() for ln in lines[1:] if ln.strip().startswith("- ")), "")
            return f"{fn}: {first}"[:240]

        reasons = list(dict.fromkeys(f"step {st}: {reason(m)}" for st, m in self.events))
        breaks = counters["graph_break"]
        return {
            "recompiles": len(self.events),
            "recompiles_timed": sum(st > after_step for st, _ in self.events) if after_step is not None else None,
            "recompile_reasons": reasons[:4], "graphs": counters["stats"]["unique_graphs"],
            "graph_breaks": sum(breaks.values()), "graph_break_reasons": [k[:200] for k in list(breaks)[:3]],
        }  # fmt: skip


DYNAMO: DynamoCounts | None = None


@contextlib.contextmanager
def cpu_compile(on: bool):
    """``--compile-cpu``: the stage's compiled blocks on the CPU too (which the stage itself never
    does), with the ``aot_eager`` backend: dynamo's guards, recompiles and graph breaks as on a
    GPU, without inductor's C++ build."""
    if not on:
        yield
        return
    import dataclasses
    import functools

    import cama.lora.settings as LS
    import cama.train.run as R

    train_settings, compile_blocks = LS.train_settings, R.compile_blocks

    def compiled(lora, *, max_steps, cuda):
        cfg = train_settings(lora, max_steps=max_steps, cuda=cuda)
        return dataclasses.replace(cfg, torch_compile=bool(lora.train.get("torch_compile", True)))

    LS.train_settings, R.compile_blocks = compiled, functools.partial(compile_blocks, backend="aot_eager")
    try:
        yield
    finally:
        LS.train_settings, R.compile_blocks = train_settings, compile_blocks


def profiler(start: int, steps: int, cap_s: float):
    """A callback: profile training steps ``start + 1 .. start + steps``, print the summary
    (given up after ``cap_s`` seconds), then stop the run."""
    import threading

    import torch
    from transformers import TrainerCallback

    cuda = torch.cuda.is_available()
    activity = torch.profiler.ProfilerActivity.CUDA if cuda else torch.profiler.ProfilerActivity.CPU

    class Profile(TrainerCallback):
        prof, t0 = None, 0.0

        def on_step_begin(self, args, state, control, **kw):
            if state.global_step == start and self.prof is None:
                if cuda:
                    torch.cuda.synchronize()
                self.prof = torch.profiler.profile(activities=[activity], record_shapes=False, with_stack=False,
                                                   profile_memory=False, with_flops=False)  # fmt: skip
                self.prof.start()
                self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            if self.prof is None or state.global_step != start + steps:
                return
            if cuda:
                torch.cuda.synchronize()
            wall = time.perf_counter() - self.t0
            self.prof.stop()  # the events are parsed lazily, below, under the cap
            control.should_training_stop = True
            out: list[str] = []

            def summarise():
                try:
                    out.append(profile_summary(self.prof, steps, wall, cuda))
                except Exception as e:  # a profile is a diagnosis: never fail the measurement for it
                    out.append(f"profile: no summary ({type(e).__name__}: {e})")

            t = threading.Thread(target=summarise, daemon=True)
            t.start()
            t.join(cap_s)
            print(out[0] if out else f"profile: summary not done in {cap_s:.0f} s; abandoned", flush=True)

    return Profile()


def _busy_seconds(intervals) -> float:
    """Length of the union of (start, end) intervals."""
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


def profile_summary(prof, steps: int, wall_s: float, cuda: bool) -> str:
    """Device busy and idle (host gaps) per step, then the costliest kernels (GPU) or ops (CPU) by self time."""
    from torch.autograd import DeviceType

    events = prof.events()
    if cuda:
        spans = [(e.time_range.start, e.time_range.end) for e in events if e.device_type == DeviceType.CUDA]
        what = "GPU kernels"
    else:  # top-level ops: the rest of the window is Python and the framework around them
        spans = [(e.time_range.start, e.time_range.end) for e in events if e.cpu_parent is None and not e.is_async]
        what = "top-level CPU ops"
    busy = _busy_seconds(spans) / 1e6  # the profiler's clock is in microseconds
    lines = [f"profile, {steps} steps: wall {wall_s / steps * 1e3:.1f} ms a step; {what} busy {busy / steps * 1e3:.1f} ms "
             f"a step; idle (host gaps) {100 * max(0.0, 1 - busy / wall_s):.1f} % of the window"]  # fmt: skip
    if cuda:
        lines.append(_pretrain_mfu().kernel_summary(prof, steps))  # by kind, then the 25 costliest kernels
    else:
        rows = sorted(((e.self_cpu_time_total / steps / 1e3, e.count // steps, e.key[:120]) for e in prof.key_averages()),
                      reverse=True)[:25]  # fmt: skip
        lines += [f"{ms:8.2f} ms {n:5d}x  {key}" for ms, n, key in rows]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- driver


def stub_pyarrow() -> None:
    """cama.io imports pyarrow; nothing here reads Parquet, and the GPU image may lack it
    (pretrain_mfu's stub, loaded from that script rather than written twice)."""
    import peft  # noqa: F401  (before the stub: their own probes for pyarrow see the truth)
    from transformers import LlamaForCausalLM, Trainer  # noqa: F401

    _pretrain_mfu()._stub_pyarrow()


_PRETRAIN_MFU = None


def _pretrain_mfu():
    """benchmarks/pretrain_mfu.py as a module (its pyarrow stub and kernel profiler: one copy each)."""
    global _PRETRAIN_MFU
    if _PRETRAIN_MFU is None:
        import importlib.util

        spec = importlib.util.spec_from_file_location("pretrain_mfu", HERE / "pretrain_mfu.py")
        _PRETRAIN_MFU = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(_PRETRAIN_MFU)
    return _PRETRAIN_MFU


def run_variant(name: str, work: Path, sc: dict) -> dict:
    import torch

    global DYNAMO
    stub_pyarrow()
    prepare(work, sc)
    t0 = time.perf_counter()
    DYNAMO = DynamoCounts()
    try:
        res = run_peer(name, work, sc) if name.startswith("peer_") else run_ours(name, work, sc)
    except ImportError as e:
        res = {"variant": name, "skipped": f"{type(e).__name__}: {e}"}
    # ours: recompiles after the first logged interval fall in the timed steps
    res.update(DYNAMO.result(after_step=sc["log"] if name.startswith("ours") and name != "ours_match" else None))
    DYNAMO = None
    res["wall_s"] = round(time.perf_counter() - t0, 1)
    if torch.cuda.is_available():
        res["gpu"] = torch.cuda.get_device_name()
    return res


def mfu_of(tok_s: float, sc: dict, work: Path) -> float | None:
    """LoRA MFU of a peer, by the same F as ours (the peers do not compute it themselves)."""
    import torch

    from cama.lora.train import attention_length, lora_flops_per_token
    from cama.train.metrics import peak_tflops

    peak = peak_tflops(torch.cuda.get_device_name() if torch.cuda.is_available() else None)
    if not peak:
        return None
    s = sc["shape"]
    lengths = [len(e) for e in load_examples(work / "examples.npz")]
    d, L, V = s["hidden_size"], s["num_hidden_layers"], s["vocab_size"]
    kv = d // s["num_attention_heads"] * s["num_key_value_heads"]
    per_layer = d * d * 2 + 2 * d * kv + 3 * d * s["intermediate_size"]
    lora = L * 16 * (4 * d + 2 * (d + kv) + 2 * (d + s["intermediate_size"]) + (s["intermediate_size"] + d))
    f = lora_flops_per_token(layers=L, hidden=d, vocab=V, non_embedding=L * per_layer + V * d, lora_params=lora,
                             attn_seq=attention_length(lengths), answer_fraction=0.5)  # fmt: skip
    return tok_s * f / (peak * 1e12)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--variants", default=None, help="comma-separated (default: all; with --smoke: "
                   "the strongest peer, ours and ours_match)")
    p.add_argument("--smoke", action="store_true", help="CPU, a 2-layer model, a few steps (checks the script)")
    p.add_argument("--work", default=None, help="scratch folder (default: a fresh temporary one)")
    p.add_argument("--timeout", type=int, default=420, help="seconds a variant may take (its process is then killed)")
    p.add_argument("--profile", nargs="?", const="ours", default="", metavar="VARIANTS",
                   help="profile these ours* variants (default: ours) over 2 late steps; see the module docstring")
    p.add_argument("--profile-cap", type=float, default=90, help="seconds the profile's summary may take")
    p.add_argument("--compile-cpu", action="store_true", help="with --smoke: compile the blocks on the CPU too "
                   "(aot_eager backend: dynamo's guards and recompiles without inductor)")
    p.add_argument("--processes", action="store_true", help="with --smoke: each variant in its own process, "
                   "as without --smoke (checks that path)")
    p.add_argument("--variant", default=None, help=argparse.SUPPRESS)  # one variant, in this process
    p.add_argument("--out", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    sc = {**scale(a.smoke), "smoke": a.smoke, "compile_cpu": a.smoke and a.compile_cpu}
    if a.profile:  # the variants' processes inherit these
        os.environ["CAMA_BENCH_PROFILE"], os.environ["CAMA_BENCH_PROFILE_CAP"] = a.profile, str(a.profile_cap)
    a.variants = a.variants or (",".join((STRONGEST, "ours", "ours_match")) if a.smoke else ",".join(PEERS + OURS))
    if a.variant:
        res = run_variant(a.variant, Path(a.work), sc)
        Path(a.out).write_text(json.dumps(res))
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)  # the result is written: no interpreter teardown to hang in (profiler, compile workers)
    import tempfile

    work = Path(a.work or tempfile.mkdtemp(prefix="lora_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    results = {}
    if a.smoke and not a.processes:  # in this process: the tiny model trains in seconds, imports would dominate
        import torch

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", 2)))
        for name in a.variants.split(","):
            results[name] = run_variant(name, work, sc)
            print(json.dumps({k: v for k, v in results[name].items() if k != "loss_curve"}), flush=True)
        report(results, sc, work)
        return
    for name in a.variants.split(","):
        out = work / f"{name}.json"
        out.unlink(missing_ok=True)  # an earlier call's, in the same --work
        cmd = [sys.executable, __file__, "--variant", name, "--work", str(work), "--out", str(out),
               *(["--smoke"] if a.smoke else []), *(["--compile-cpu"] if sc["compile_cpu"] else [])]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(HERE.parent / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=a.timeout)
            if name in a.profile.split(","):
                print(proc.stdout[-6000:], flush=True)
        except subprocess.TimeoutExpired as e:
            results[name] = {"variant": name, "failed": f"timed out after {a.timeout} s"}
            if out.exists():  # done, then stuck on the way out: the result stands
                results[name] = {**json.loads(out.read_text()), "note": f"killed after {a.timeout} s, its result written"}
            partial = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            print(partial[-6000:], flush=True)  # what it printed (a profile, say) before it was killed
        else:
            if proc.returncode == 0 and out.exists():
                results[name] = json.loads(out.read_text())
            else:
                results[name] = {"variant": name, "failed": proc.stderr[-1500:]}
        print(json.dumps({k: v for k, v in results[name].items() if k != "loss_curve"}), flush=True)
    report(results, sc, work)


def report(results: dict, sc: dict, work: Path) -> None:
    stub_pyarrow()  # mfu_of imports the stage
    ok = {k: v for k, v in results.items() if "real_tokens_per_s" in v}
    for v in ok.values():
        if v.get("mfu") is None:
            v["mfu"] = mfu_of(v["real_tokens_per_s"], sc, work)
    ref = ok.get(STRONGEST) or next((v for k, v in ok.items() if k.startswith("peer_")), None)
    print(f"\n{'variant':26s} {'real tok/s':>11s} {'x strongest':>11s} {'LoRA MFU':>9s} {'peak GB':>8s}")
    for name, v in results.items():
        if name not in ok:
            print(f"{name:26s} {'skipped' if 'skipped' in v else 'FAILED':>11s}  {v.get('skipped', '')[:60]}")
            continue
        ratio = v["real_tokens_per_s"] / ref["real_tokens_per_s"] if ref else float("nan")
        mfu = f"{100 * v['mfu']:.1f}%" if v.get("mfu") is not None else "n/a"
        mem = f"{v['max_mem_gb']:.1f}" if v.get("max_mem_gb") is not None else "n/a"
        print(f"{name:26s} {v['real_tokens_per_s']:>11,d} {ratio:>10.2f}x {mfu:>9s} {mem:>8s}")
    peer, match = ok.get(STRONGEST) or ok.get("peer_padfree_sdpa_mb16"), ok.get("ours_match")
    if peer and match:
        a, b = peer["loss_curve"], match["loss_curve"]
        n = min(len(a), len(b))
        tail = range(n // 2, n)
        diff = sum(abs(a[i] - b[i]) for i in tail) / max(len(tail), 1)
        drop = a[0] - sum(a[i] for i in tail) / max(len(tail), 1)
        print(f"\nloss curves, peer ({peer['variant']}) vs ours_match, same batches: start {a[0]:.3f} / {b[0]:.3f}, "
              f"second half mean |diff| {diff:.4f} against a drop of {drop:.3f}")  # fmt: skip
        print("peer :", " ".join(f"{x:.3f}" for x in a[: n : max(n // 12, 1)]))
        print("ours :", " ".join(f"{x:.3f}" for x in b[: n : max(n // 12, 1)]))
    (work / "results.json").write_text(json.dumps(results, indent=1))
    print(f"\nall results: {work / 'results.json'}")


if __name__ == "__main__":
    main()

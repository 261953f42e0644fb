"""GPU benchmark: tokens/s and MFU of our pretraining stage against two HF Trainer baselines.

The TinyLlama-1.1B shape (22 layers, hidden 2048, 32 heads, 4 KV heads, intermediate 5632,
vocabulary 32000), random init, sequence length 2048, on packed shards of random tokens
written on the fly (full-length samples, so no padding and no attention mask). Variants:

- ``ours``        the stage as a user runs it for a model that fits: ``cama.pretrain.train.pretrain``
                  (the training core, ``cama.train``) with zero.stage auto (0 = plain data parallel
                  when the model states fit), bf16, SDPA, fused AdamW, compiled blocks
                  (``cama.train.compile``), micro-batch 8, no gradient checkpointing;
- ``ours_zero3``  the stage with ZeRO-3 forced (what a 13B needs) and otherwise as a user runs
                  it: the stage keeps the parameters resident because they fit (``fit_zero3``),
                  blocks compiled, micro-batch 8, no gradient checkpointing;
- ``ours_zero3_sharded`` (not in the default list) the same with the parameters partitioned
                  and gathered per use, as a model that does not fit whole runs;
- ``plain``       the anchor baseline: plain HF Trainer, bf16 autocast, SDPA, fused AdamW,
                  micro-batch 4, no DeepSpeed;
- ``zero3_auto``  the anchor baseline: HF Trainer + DeepSpeed ZeRO-3 with "auto" settings, micro-batch 4.

MFU = tokens/s × (6·N_nonembedding + 6·L·d·s) / peak (ANCHORS; H100/H200 989 TFLOP/s dense bf16),
per GPU. Steps after ``--warmup`` are timed (compilation and ZeRO warm-up excluded). The driver
runs ``--repeats`` rounds (3 by default), each round every variant once in the order given,
so each figure is timed several times interleaved with its baselines; the table gives
min / median / max, and the ratios compare medians.

Run (the driver starts each variant in its own torchrun job and prints one table)::

    TORCH_CUDA_ARCH_LIST=9.0 PYTHONPATH=src python benchmarks/pretrain_mfu.py --gpus 1
    PYTHONPATH=src python benchmarks/pretrain_mfu.py --smoke   # CPU, a 2-layer model, < 1 min: checks the plumbing
    TORCH_CUDA_ARCH_LIST=9.0 PYTHONPATH=src python benchmarks/pretrain_mfu.py --gpus 2 --variants ours_zero3,zero3_auto,plain
    ... --gpus 2 --variants ours_zero3 --micro-batch 16     # then --gpus 1 on the same machine: scaling
    ... --profile                                           # GPU time per step by kernel

One variant under a launcher of your choice::

    PYTHONPATH=src deepspeed --num_gpus 2 benchmarks/pretrain_mfu.py --variant ours_zero3 --out r.json
    PYTHONPATH=src torchrun --nproc_per_node 2 benchmarks/pretrain_mfu.py --variant plain --out r.json

Needs torch, transformers, numpy and pyyaml (and deepspeed for the ZeRO variants); pyarrow is
stubbed if absent (cama.io only builds Parquet schemas at import; nothing here reads Parquet),
and jsonschema is not needed (the settings are built directly, defaults from the schema).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

SHAPE = dict(layers=22, hidden_size=2048, heads=32, kv_heads=4, intermediate_size=5632)
SMOKE_SHAPE = dict(layers=2, hidden_size=64, heads=4, kv_heads=2, intermediate_size=172)
VOCAB = 32000
VARIANTS = ("ours", "ours_zero3", "plain", "zero3_auto")
EXTRA_VARIANTS = ("ours_zero3_sharded",)


def _stub_pyarrow() -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        stub = types.ModuleType("pyarrow")
        for name in ("schema", "string", "float64", "int64", "binary", "Table", "Schema"):
            setattr(stub, name, lambda *a, **k: None)
        stub.parquet = types.ModuleType("pyarrow.parquet")
        sys.modules["pyarrow"], sys.modules["pyarrow.parquet"] = stub, stub.parquet


# ----------------------------------------------------------------------------- data and model


def write_random_blend(folder: Path, samples: int, seq: int, seed: int = 0) -> Path:
    """One source of ``samples`` full-length random-token samples, as the pack stage lays it out."""
    import numpy as np

    from cama.pack.indexed import IndexedWriter

    rng = np.random.default_rng(seed)
    prefix = folder / "random_0"
    with IndexedWriter(prefix, np.uint16) as w:
        for _ in range(samples):
            w.add_sequence(rng.integers(3, VOCAB, seq, dtype=np.uint16))
            w.end_document()
    blend = {"max_length": seq, "vocab_size": VOCAB, "bos_id": 1, "eos_id": 2,
             "sources": {"random": {"lang": "en", "weight": 1.0, "samples": samples, "tokens": samples * seq}},
             "datasets": [{"prefix": prefix.name, "source": "random", "lang": "en", "samples": samples,
                           "tokens": samples * seq, "weight": 1.0}]}  # fmt: skip
    (folder / "blend.json").write_text(json.dumps(blend))
    return folder / "blend.json"


def base_config(seq: int, smoke: bool = False):
    from cama.pretrain.config import ModelInit
    from cama.pretrain.model import llama_config

    shape = SMOKE_SHAPE if smoke else SHAPE
    cfg = llama_config(ModelInit(max_position_embeddings=seq, **shape), VOCAB)  # other fields: the schema's
    cfg.attn_implementation = "sdpa"
    return cfg


def write_base_model(folder: Path, seq: int, smoke: bool = False) -> Path:
    """A random-init model folder (rank 0 writes; the others wait for the marker)."""
    import torch
    from transformers import LlamaForCausalLM

    out = folder / "base"
    if int(os.environ.get("RANK", 0)) == 0:
        torch.manual_seed(0)
        with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
            model = LlamaForCausalLM(base_config(seq, smoke))
        model.to(torch.bfloat16).save_pretrained(str(out))
        (folder / "base.done").touch()
    while not (folder / "base.done").exists():
        time.sleep(1)
    return out


# ----------------------------------------------------------------------------- variants


def run_ours(work: Path, args, zero3: bool, sharded: bool = False, callbacks: tuple = ()) -> dict:
    from cama.pretrain.train import pretrain
    from cama.train.settings import TrainSettings, ZeroSettings

    world = int(os.environ.get("WORLD_SIZE", 1))
    mb = args.micro_batch or 8
    blend = work / "blend.json"
    if int(os.environ.get("RANK", 0)) == 0:
        write_random_blend(work, args.steps * mb * world, args.seq)
        (work / "blend.done").touch()
    while not (work / "blend.done").exists():
        time.sleep(1)
    base = write_base_model(work, args.seq, args.smoke)
    zero = {"stage": 3} if zero3 else {"stage": "auto"}  # forced 3: the stage tunes it by what fits
    if sharded:  # DeepSpeed's own thresholds: parameters partitioned, gathered per use
        zero = {"stage": 3, "stage3_param_persistence_threshold": 10 * SHAPE["hidden_size"], "overlap_comm": True}
    # the keys not given take the schema's defaults (no jsonschema needed: the GPU image may lack it)
    settings = TrainSettings(
        max_steps=args.steps, micro_batch_size=mb, gradient_accumulation_steps=1,
        seq_length=args.seq, lr=1e-4, warmup_steps=2, precision="auto" if args.smoke else "bf16",
        gradient_checkpointing=False, torch_compile=not args.no_compile, sdpa_backend=args.sdpa_backend,
        save_steps=10**6, logging_steps=args.log_every, dataloader_workers=0 if args.smoke else 2,
        zero=ZeroSettings(**zero), peak_tflops=args.peak,
    )  # fmt: skip
    stats = pretrain(blend=blend, base_model=base, out_model=work / "out", checkpoint_dir=work / "ckpt",
                     settings=settings, callbacks=callbacks)  # fmt: skip
    timed = [r for r in stats["loss_curve"] if r["step"] > args.warmup and "tokens_per_s" in r]
    tok_s = sum(r["tokens_per_s"] for r in timed) / len(timed) / world  # per GPU
    return {"micro_batch": mb, "zero_stage": stats["zero_stage"], "compile": settings.torch_compile,
            "sdpa": stats["sdpa_backend"], "tokens_per_s_per_gpu": tok_s}  # fmt: skip


def kernel_summary(prof, steps: int) -> str:
    """GPU time per step by kind of kernel, and the 25 costliest kernels."""
    kinds = {"attention": ("sdpa", "fmha", "flash", "attention", "cudnn"),
             "matmul": ("gemm", "nvjet", "xmma", "cutlass", "matmul"), "nccl": ("nccl",),
             "compiled (triton)": ("triton",), "optimizer": ("adam", "multi_tensor")}  # fmt: skip
    by_kind: dict[str, float] = {}
    rows = []
    for e in prof.key_averages():
        ms = getattr(e, "self_device_time_total", 0) / steps / 1e3
        if ms <= 0:
            continue
        name = e.key.lower()
        kind = next((k for k, keys in kinds.items() if any(x in name for x in keys)), "other")
        by_kind[kind] = by_kind.get(kind, 0.0) + ms
        rows.append((ms, e.count // steps, e.key[:140]))
    total = sum(by_kind.values())
    parts = ", ".join(f"{k} {v:.1f}" for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1]))
    lines = [f"GPU ms per step: total {total:.1f}; {parts}"]
    lines += [f"{ms:8.2f} ms {n:5d}x  {key}" for ms, n, key in sorted(rows, reverse=True)[:25]]
    return "\n".join(lines)


def profiler(start: int, steps: int = 2):
    """A callback that profiles GPU kernels over ``steps`` training steps from ``start`` (rank 0 prints a summary)."""
    import torch
    from transformers import TrainerCallback

    class Profile(TrainerCallback):
        prof = None

        def on_step_begin(self, args, state, control, **kw):
            if state.global_step == start and self.prof is None:
                self.prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA])
                self.prof.__enter__()

        def on_step_end(self, args, state, control, **kw):
            if state.global_step == start + steps and self.prof is not None:
                torch.cuda.synchronize()
                self.prof.__exit__(None, None, None)
                if int(os.environ.get("RANK", 0)) == 0:
                    print(kernel_summary(self.prof, steps), flush=True)

    return Profile()


def run_trainer_baseline(work: Path, args, zero3: bool) -> dict:
    """The anchor baselines (ANCHORS: 29.4% plain, 15.7% ZeRO-3 auto on one H200)."""
    import torch
    from transformers import LlamaForCausalLM, Trainer, TrainerCallback, TrainingArguments

    mb = args.micro_batch or 4
    ds = None
    if zero3:
        ds = {"bf16": {"enabled": True},
              "zero_optimization": {"stage": 3, "overlap_comm": True, "stage3_gather_16bit_weights_on_model_save": True},
              "train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": "auto",
              "gradient_clipping": "auto", "optimizer": {"type": "AdamW", "params": {"lr": "auto", "weight_decay": "auto"}}}  # fmt: skip
    cuda = torch.cuda.is_available()
    targs = TrainingArguments(output_dir=str(work / "out"), per_device_train_batch_size=mb, max_steps=args.steps,
                              bf16=cuda, logging_steps=10**6, save_strategy="no", report_to=[], deepspeed=ds,
                              dataloader_num_workers=2 if cuda else 0, learning_rate=1e-4,
                              optim="adamw_torch_fused" if cuda else "adamw_torch", disable_tqdm=True,
                              use_cpu=not cuda)  # fmt: skip
    _ = targs.world_size  # start the process group before ZeRO-3's partitioned init
    if zero3:
        import deepspeed

        deepspeed.init_distributed()
        with deepspeed.zero.Init(config_dict_or_path=targs.hf_deepspeed_config.config):
            model = LlamaForCausalLM(base_config(args.seq, args.smoke))
    else:
        model = LlamaForCausalLM(base_config(args.seq, args.smoke))

    class Random(torch.utils.data.Dataset):
        def __len__(self):
            return 10**6

        def __getitem__(self, i):
            x = torch.randint(0, VOCAB, (args.seq,))
            return {"input_ids": x, "labels": x}

    class Clock(TrainerCallback):
        t: dict = {}

        def on_step_end(self, a, state, control, **kw):
            if cuda:
                torch.cuda.synchronize()
            self.t[state.global_step] = time.perf_counter()

    clock = Clock()
    Trainer(model=model, args=targs, train_dataset=Random(), callbacks=[clock]).train()
    dt = (clock.t[args.steps] - clock.t[args.warmup]) / (args.steps - args.warmup)
    return {"micro_batch": mb, "zero_stage": 3 if zero3 else 0, "compile": False, "tokens_per_s_per_gpu": mb * args.seq / dt}


def run_variant(variant: str, args) -> dict:
    import torch

    _stub_pyarrow()
    from cama.train.metrics import flops_per_token, mfu, peak_tflops

    cuda = torch.cuda.is_available()
    work = Path(args.workdir or tempfile.mkdtemp(prefix=f"mfu_{variant}_"))
    work.mkdir(parents=True, exist_ok=True)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.time()
    callbacks = (profiler(start=args.steps - 4),) if args.profile and variant.startswith("ours") else ()
    if variant.startswith("ours"):
        res = run_ours(work, args, zero3=variant != "ours", sharded=variant == "ours_zero3_sharded", callbacks=callbacks)
    else:
        res = run_trainer_baseline(work, args, zero3=variant == "zero3_auto")
    cfg = base_config(args.seq, args.smoke)
    n = sum(p.numel() for p in _meta_model(cfg).parameters())
    ftok = flops_per_token(n - VOCAB * cfg.hidden_size, cfg.num_hidden_layers, cfg.hidden_size, args.seq)
    device = torch.cuda.get_device_name() if cuda else "cpu"
    peak = peak_tflops(device if cuda else None, args.peak)
    res.update({
        "variant": variant, "gpu": device, "gpus": int(os.environ.get("WORLD_SIZE", 1)),
        "seq": args.seq, "params": n, "mfu": mfu(res["tokens_per_s_per_gpu"], ftok, peak),
        "max_mem_gb": torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0, "wall_s": time.time() - t0,
    })  # fmt: skip
    return res


def _meta_model(cfg):
    import torch
    from transformers import LlamaForCausalLM

    with torch.device("meta"):
        return LlamaForCausalLM(cfg)


# ----------------------------------------------------------------------------- driver


def _spread(values: list[float], fmt: str) -> str:
    """min / median / max of repeated measurements."""
    if not values:
        return "n/a"
    return " / ".join(fmt.format(v) for v in (min(values), statistics.median(values), max(values)))


def table(runs: dict[str, list[dict]]) -> str:
    """One row per variant: its repeated runs as min / median / max."""
    head = ("| variant | GPU | GPUs | ZeRO | micro-batch | compile | SDPA first | runs | tokens/s/GPU (min / median / max) "
            "| MFU (min / median / max) | max mem GB |")  # fmt: skip
    lines = [head, "|---" * (head.count("|") - 1) + "|"]
    for variant, rows in runs.items():
        ok = [r for r in rows if "error" not in r]
        failed = len(rows) - len(ok)
        if not ok:
            lines.append(f"| {variant} | failed: {rows[0]['error'][:80]} |||||||||")
            continue
        r = ok[0]
        tok = [x["tokens_per_s_per_gpu"] for x in ok]
        mfus = [100 * x["mfu"] for x in ok if x["mfu"] is not None]
        lines.append(
            f"| {variant} | {r['gpu']} | {r['gpus']} | {r['zero_stage']} | {r['micro_batch']} | "
            f"{'yes' if r['compile'] else 'no'} | {r.get('sdpa', 'default')} | {len(ok)}{f' ({failed} failed)' if failed else ''} | "
            f"{_spread(tok, '{:,.0f}')} | {_spread(mfus, '{:.1f}%')} | {max(x['max_mem_gb'] for x in ok):.1f} |"
        )
    return "\n".join(lines)


def run_one(variant: str, args) -> dict:
    """One variant in its own torchrun job; its JSON result (or the error)."""
    res_dir = Path(tempfile.mkdtemp(prefix="mfu_res_", dir=args.workdir))
    out = res_dir / "r.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.gpus}",
           __file__, "--variant", variant, "--out", str(out), "--workdir", str(res_dir / "work"),
           "--steps", str(args.steps),
           "--warmup", str(args.warmup), "--seq", str(args.seq), "--log-every", str(args.log_every)]  # fmt: skip
    if args.peak:
        cmd += ["--peak", str(args.peak)]
    if args.micro_batch:
        cmd += ["--micro-batch", str(args.micro_batch)]
    if args.no_compile:
        cmd += ["--no-compile"]
    if args.smoke:
        cmd += ["--smoke"]
    cmd += ["--sdpa-backend", args.sdpa_backend] + (["--profile"] if args.profile else [])
    print("running:", " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, timeout=args.timeout)
    if proc.returncode == 0 and out.exists():
        row = json.loads(out.read_text())
    else:
        row = {"variant": variant, "error": f"exit {proc.returncode}"}
    shutil.rmtree(res_dir, ignore_errors=True)  # a 1.1B model, its optimizer state and shards: GBs
    print(json.dumps(row), flush=True)
    return row


def drive(args) -> None:
    variants = args.variants.split(",")
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    for round_ in range(args.repeats):  # interleaved: every variant once per round
        print(f"round {round_ + 1} of {args.repeats}", flush=True)
        for variant in variants:
            runs[variant].append(run_one(variant, args))
    print("\n" + table(runs), flush=True)
    for a, b in (("ours", "plain"), ("ours", "zero3_auto"), ("ours_zero3", "zero3_auto")):
        ra, rb = ([x for x in runs.get(v, []) if "error" not in x] for v in (a, b))
        if ra and rb:
            key = "mfu" if ra[0]["mfu"] is not None else "tokens_per_s_per_gpu"
            ratio = statistics.median(x[key] for x in ra) / statistics.median(x[key] for x in rb)
            print(f"{a} / {b}: {ratio:.2f}x {'MFU' if key == 'mfu' else 'tokens/s'} (medians of {len(ra)} and {len(rb)} runs)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--variant", choices=VARIANTS + EXTRA_VARIANTS, help="run one variant (under torchrun or deepspeed)")
    p.add_argument("--variants", default=",".join(VARIANTS), help="driver: which variants, in order")
    p.add_argument("--gpus", type=int, default=1, help="driver: processes per variant")
    p.add_argument("--out", default=None, help="one variant: where its JSON goes (rank 0)")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--warmup", type=int, default=10, help="steps excluded from timing")
    p.add_argument("--log-every", type=int, default=5, help="ours: logging interval = timing interval")
    p.add_argument("--seq", type=int, default=2048)
    p.add_argument("--micro-batch", type=int, default=None, help="default: 8 for ours, 4 for baselines")
    p.add_argument("--no-compile", action="store_true", help="ours without torch.compile")
    p.add_argument("--sdpa-backend", default="auto", help="ours: pretrain.sdpa_backend")
    p.add_argument("--profile", action="store_true", help="ours: print GPU time by kernel, 2 late steps")
    p.add_argument("--peak", type=float, default=None, help="TFLOP/s; default by GPU name")
    p.add_argument("--workdir", default=None, help="scratch folder (default: the system temp dir)")
    p.add_argument("--timeout", type=int, default=1200, help="driver: seconds per variant")
    p.add_argument("--repeats", type=int, default=3, help="driver: rounds; each round runs every variant once")
    p.add_argument("--smoke", action="store_true",
                   help="CPU plumbing check: a 2-layer model, length 128, 6 steps, variants ours and plain, 1 round")
    p.add_argument("--local_rank", type=int, default=None, help=argparse.SUPPRESS)  # deepspeed launcher
    args = p.parse_args()
    if args.smoke:
        args.seq, args.steps, args.warmup, args.log_every = min(args.seq, 128), min(args.steps, 6), 2, 2
        args.micro_batch, args.no_compile = args.micro_batch or 2, True
        if not args.variant and args.variants == ",".join(VARIANTS):
            args.variants, args.repeats = "ours,plain", 1
    if not args.variant:
        drive(args)
        return
    res = run_variant(args.variant, args)
    if int(os.environ.get("RANK", 0)) == 0:
        print(json.dumps(res), flush=True)
        if args.out:
            Path(args.out).write_text(json.dumps(res))


if __name__ == "__main__":
    main()

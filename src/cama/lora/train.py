"""LoRA instruction tuning: packed rows of tokenized records through the training core.

Launch (``cama lora`` builds these; the ``lora`` rule runs it)::

    cama lora --tasks 2 --threads 2 -- --data results/lora/data --base-model results/pretrain/model \\
        --out-adapter results/lora/adapter --checkpoint-dir results/lora/checkpoints \\
        --stats results/lora/stats.json --curve results/lora/loss.png --settings '{"r": 8}'
    # what the launcher runs for one process (torchrun and Slurm: see cama.train.launch)
    python -m cama.train.worker cama.lora.train --data ... --base-model ...

What is specific to LoRA, and lives here:

1. data: the tokenized examples (``cama.lora.data``, the ``lora_data`` rule) planned into
   packed rows once (``cama.lora.packing.plan_rows``: a seeded shuffle per epoch), so the core
   reads row k at step k whatever happens: a run resumed after ``kill -9`` repeats and skips
   nothing. Validation rows are planned the same way from ``val``;
2. the model: ``cama.lora.model.lora_model`` (the base frozen in bf16 on a GPU, fp32 on the
   CPU; adapters from the ``lora`` section) with the packed forward and the answer-only loss;
3. MFU, defined for LoRA (``lora_flops_per_token``);
4. outputs: the adapter (peft's own files, loadable with plain ``PeftModel.from_pretrained``),
   its tokenizer with the chat template, ``lora_config.json`` (the resolved config) beside it;
   stats with tokens/s, real tokens/s and peak memory; the train/validation loss curves.

**The path on each device**, and why: on a GPU the frozen base is bf16, the blocks are
compiled with their adapters (``torch_compile``: the adapters' dropout, casts and small
matmuls fuse around the base matmuls, and the partitioner recomputes cheap pointwise ops
instead of saving them, which is what lets a 4096-token row fit beside a 1.1B base in under
14 GB), attention is FlexAttention with a document block mask, and the loss is the fused
chunked one; inputs are copied without blocking and nothing reads a device value between
logging steps. ``benchmarks/lora_throughput.py`` measures this against the peers and the
other paths. On the CPU the base is fp32, uncompiled, and attention is SDPA with a dense
block-diagonal mask: exact, which is what matters there.

Everything else (processes, DDP or ZeRO, the Trainer, complete checkpoints and exact resume,
tokens/s and MFU in the logs, the atomic save) is the core's.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
from pathlib import Path

from cama.errors import ConfigError
from cama.io import write_json
from cama.lora import settings as L

log = logging.getLogger("cama.lora")

CONFIG_NAME = "lora_config.json"  # the resolved config, beside the adapter


def lora_flops_per_token(*, layers: int, hidden: int, vocab: int, non_embedding: int, lora_params: int,
                         attn_seq: float, answer_fraction: float) -> float:  # fmt: skip
    """Training FLOPs per real token under LoRA (the work the task needs, not what a path does).

    - ``4·N_body``: the frozen matmuls' forward (2N) and the gradient with respect to their
      inputs (2N), which the adapters below them need; no weight gradient for a frozen weight;
    - ``4·V·d·f``: the LM head, forward and input gradient, only on the fraction ``f`` of
      positions that predict an answer token (the loss needs no other logits);
    - ``6·N_lora``: the adapters, forward and both gradients;
    - ``6·L·d·s``: causal attention (forward + backward), with ``s`` = Σn²/Σn over the
      examples: each token attends within its own example only.

    ``N_body`` is the non-embedding parameters less the LM head.
    """
    head = vocab * hidden
    body = non_embedding - head
    return 4.0 * body + 4.0 * head * answer_fraction + 6.0 * lora_params + 6.0 * layers * hidden * attn_seq


def attention_length(lengths) -> float:
    """Σn²/Σn: the mean number of positions a token's causal attention spans, ×2."""
    import numpy as np

    n = np.asarray(lengths, dtype=np.float64)
    return float((n * n).sum() / max(n.sum(), 1.0))


def train_lora(
    *,
    data_dir: str | os.PathLike,
    base_model: str | os.PathLike,
    out_adapter: str | os.PathLike,
    checkpoint_dir: str | os.PathLike,
    settings: L.LoraSettings,
    out_stats: str | os.PathLike | None = None,
    out_curve: str | os.PathLike | None = None,
    tensorboard_dir: str | os.PathLike | None = None,
    callbacks: tuple = (),
    rows: list[list[int]] | None = None,
    examples: tuple[list, list] | None = None,
) -> dict:
    """Tune ``base_model`` on ``data_dir/{train,val}.parquet``; write the adapter, stats, the curves.

    ``rows`` replaces the planned rows (example indices per row, in training order): the
    benchmark trains on a peer's exact batches with it. ``examples`` (train, val) replaces the
    files of ``data_dir`` (the benchmark's examples, in memory)."""
    import torch

    from cama.lora.data import load_tokenizer, read_examples
    from cama.lora.model import check_targets, lora_model, resolve_attention, use_packed_forward
    from cama.lora.packing import PackedCollator, PackedRows, fill_stats, plan_rows
    from cama.train.metrics import plot_loss
    from cama.train.run import ModelInfo, fit

    data_dir = Path(data_dir)
    if examples is not None:
        train_ex, val_ex = examples
    else:
        train_ex, val_ex = read_examples(data_dir / "train.parquet"), read_examples(data_dir / "val.parquet")
    if not val_ex:
        raise ConfigError(f"{data_dir / 'val.parquet'}: the validation split is empty")
    cuda = torch.cuda.is_available()
    world = int(os.environ.get("WORLD_SIZE", 1))
    if settings.pack_length < settings.cutoff_len:
        raise ConfigError(f"lora.pack_length: {settings.pack_length} is shorter than cutoff_len {settings.cutoff_len}")
    attention = resolve_attention(settings.attention, cuda)
    info = ModelInfo.of(base_model)
    if info.max_positions and settings.cutoff_len > info.max_positions:
        raise ConfigError(f"lora.cutoff_len: {settings.cutoff_len} exceeds the model's max_position_embeddings "
                          f"{info.max_positions} ({base_model})")  # fmt: skip
    longest = max(len(e) for e in train_ex + val_ex)
    if longest > settings.pack_length:
        raise ConfigError(f"lora.pack_length: an example of {longest} tokens does not fit a row of "
                          f"{settings.pack_length} (the data was tokenized with a larger cutoff_len?)")  # fmt: skip

    # 1. data: rows planned once; the core reads them in order -------------------------------
    lengths = [len(e) for e in train_ex]
    one_pass = plan_rows(lengths, settings.pack_length, epochs=1, seed=settings.train["seed"])
    probe = L.train_settings(settings, max_steps=1, cuda=cuda)
    from cama.train.settings import batch_sizes

    _, gbs, problems = batch_sizes(probe, world, "lora.train")
    if problems:
        raise ConfigError(problems)
    max_steps = settings.train["max_steps"] or L.steps_for(len(one_pass), settings.epochs, gbs)
    passes = -(-max_steps * gbs // max(len(one_pass), 1)) + 1  # enough passes to fill every step
    if rows is None:
        rows = plan_rows(lengths, settings.pack_length, epochs=passes, seed=settings.train["seed"])
    elif len(rows) < max_steps * gbs:
        raise ConfigError(f"lora: {len(rows)} rows given for {max_steps} steps of {gbs}")
    val_rows = plan_rows([len(e) for e in val_ex], settings.pack_length, epochs=1, seed=settings.train["seed"])
    train_cfg = L.train_settings(settings, max_steps=max_steps, cuda=cuda)
    pad_to = settings.pack_length * train_cfg.micro_batch_size if train_cfg.torch_compile else None
    collator = PackedCollator(info.pad_id, pad_to)

    # 2. the model --------------------------------------------------------------------------
    dtype = torch.bfloat16 if cuda and train_cfg.precision in ("auto", "bf16") else (
        torch.float16 if cuda and train_cfg.precision == "fp16" else torch.float32)  # fmt: skip

    def model():
        net = lora_model(base_model, r=settings.r, alpha=settings.alpha, dropout=settings.dropout,
                         targets=settings.target_modules, dtype=dtype, seed=train_cfg.seed,
                         adapter_dtype=settings.adapter_dtype)  # fmt: skip
        use_packed_forward(net, attention, max_len=settings.cutoff_len, fused_loss=settings.fused_loss,
                           loss_chunk=settings.loss_chunk)  # fmt: skip
        return net

    with torch.device("meta"):
        from transformers import AutoConfig, AutoModelForCausalLM

        config = AutoConfig.from_pretrained(str(base_model))
        meta = AutoModelForCausalLM.from_config(config)
        check_targets(meta, settings.target_modules)  # before any process group or weights
        n_lora = _lora_params(meta, settings)
    answers = sum(int(e.mask.sum()) for e in train_ex) / max(sum(lengths), 1)
    ftok = lora_flops_per_token(layers=info.layers, hidden=info.hidden, vocab=config.vocab_size,
                                non_embedding=info.non_embedding, lora_params=n_lora,
                                attn_seq=attention_length(lengths), answer_fraction=answers)  # fmt: skip

    # 3. the tokenizer that goes with the adapter: the chat template in it ---------------------
    tok_dir = Path(checkpoint_dir) / "tokenizer"
    if not any((Path(base_model) / f).is_file() for f in ("tokenizer.json", "tokenizer.model")):
        log.warning("%s has no tokenizer: the adapter folder will have none", base_model)  # the benchmark's random base
        tok_dir = None
    elif int(os.environ.get("RANK", 0)) == 0:
        load_tokenizer(base_model).save_pretrained(str(tok_dir))
    fill = fill_stats(train_ex, rows[: max_steps * gbs], settings.pack_length)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    result = fit(
        key="lora.train",
        settings=train_cfg,
        model_info=dataclasses.replace(info, trainable=n_lora),
        model=model,
        data=lambda n: PackedRows(train_ex, rows[:n]),
        collator=collator,
        eval_data=PackedRows(val_ex, val_rows),
        eval_steps=settings.eval_steps,
        eval_on_start=True,  # step 0: the base model's validation loss, what the adapter must beat
        flops=lambda _seq: ftok,
        checkpoint_dir=checkpoint_dir,
        out_dir=out_adapter,
        tokenizer_dir=tok_dir,
        config_name=CONFIG_NAME,
        extra={"lora": settings.adapter_config(),
               "paths": {"data": str(data_dir), "base_model": str(base_model), "out_adapter": str(out_adapter)}},
        derived={"attention": attention, "pack_length": settings.pack_length, "pad_to": pad_to,
                 "train_examples": len(train_ex), "val_examples": len(val_ex), "rows_per_epoch": len(one_pass),
                 "lora_params": n_lora, "flops_per_token": ftok},
        tensorboard_dir=tensorboard_dir,
        callbacks=callbacks,
        resume_keys=("seed", "max_steps", "micro_batch_size"),
    )  # fmt: skip
    stats = dict(result.stats)
    real = stats.get("tokens_per_s")
    padded = (settings.pack_length * train_cfg.micro_batch_size) if pad_to else None
    stats.update({
        "real_tokens_per_s": real,
        # with pad_to every micro-batch is pad_to tokens; without, rows are only as long as their examples
        "tokens_per_s": round(real * pad_to / (fill["tokens"] / max(fill["rows"], 1) * train_cfg.micro_batch_size), 1)
        if real and padded else real,
        "packing": fill,
        "peak_memory_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else _peak_rss_gb(),
        "peak_memory_kind": "cuda max_memory_allocated" if cuda else "process peak RSS",
        "eval_loss_first": stats["eval_curve"][0]["eval_loss"] if stats.get("eval_curve") else None,
    })  # fmt: skip
    if result.rank == 0:
        if out_stats:
            write_json(out_stats, stats)
        if out_curve:
            plot_loss(result.log_history, out_curve, title="LoRA instruction tuning (answer tokens)")
    return stats


def _lora_params(meta_model, settings: L.LoraSettings) -> int:
    """Adapter parameters: r·(in + out) per targeted linear layer."""
    import torch

    n = 0
    for name, m in meta_model.named_modules():
        if isinstance(m, torch.nn.Linear) and name.rsplit(".", 1)[-1] in settings.target_modules:
            n += settings.r * (m.in_features + m.out_features)
    return n


def _peak_rss_gb() -> float:
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)  # KiB on Linux


def main(argv: list[str] | None = None) -> None:
    from cama.train.run import add_stage_arguments, run_stage

    p = argparse.ArgumentParser(prog="python -m cama.lora.train", description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="the lora_data rule's folder: train.parquet, val.parquet")
    p.add_argument("--base-model", required=True, help="the HF model to tune (results/pretrain/model)")
    p.add_argument("--out-adapter", required=True, help="where the peft adapter goes")
    add_stage_arguments(p, "lora")
    a = p.parse_args(argv)
    run_stage(a, L.from_dict, lambda settings: train_lora(
        data_dir=a.data, base_model=a.base_model, out_adapter=a.out_adapter, checkpoint_dir=a.checkpoint_dir,
        settings=settings, out_stats=a.stats, out_curve=a.curve, tensorboard_dir=a.tensorboard,
    ))  # fmt: skip


if __name__ == "__main__":
    main()
    from cama.train.run import exit_finished_process

    exit_finished_process()

"""Continued pretraining: the packed blend through the training core (``cama.train``).

Launch (``cama pretrain`` builds these; the ``pretrain`` rule runs it)::

    # 2 processes on this node: gloo on CPU (the demo, CI), NCCL on GPUs
    cama pretrain --tasks 2 --threads 2 -- --blend results/shards/blend.json \\
        --base-model results/pretrain/base --out-model results/pretrain/model \\
        --checkpoint-dir results/pretrain/checkpoints --stats results/pretrain/stats.json \\
        --settings '{"max_steps": 60}'
    # what the launcher runs for one process (see cama.train.launch for torchrun and Slurm)
    python -m cama.train.worker cama.pretrain.train --blend ... --base-model ...

What is specific to pretraining, and lives here:

1. checks at the start, each naming its key: the blend's vocabulary and BOS/EOS ids
   (``blend.json``, written by the pack stage) against the base model and its tokenizer
   (``cama.preflight.check_blend``), and the sample length against the model's positions;
2. data: the blend through ``cama.pack.dataset.BlendDataset``, no re-tokenisation, drawn for
   exactly ``max_steps`` × global batch samples in its own seeded order;
3. the model: the base model in fp32 master weights (bf16/fp16 come from autocast or DeepSpeed);
4. outputs: the HF folder (tokenizer beside the weights, ``pretrain_config.json``), stats and
   the loss curve.

Everything else (processes, ZeRO, the Trainer, complete checkpoints and exact resume after
``kill -9``, tokens/s and MFU, the atomic save) is the core's.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

from cama.errors import ConfigError
from cama.io import read_json, write_json
from cama.train import settings as S

log = logging.getLogger("cama.pretrain")

CONFIG_NAME = "pretrain_config.json"  # the resolved config, beside the final weights


def pretrain(
    *,
    blend: str | os.PathLike,
    base_model: str | os.PathLike,
    out_model: str | os.PathLike,
    checkpoint_dir: str | os.PathLike,
    settings: S.TrainSettings,
    out_stats: str | os.PathLike | None = None,
    out_curve: str | os.PathLike | None = None,
    tensorboard_dir: str | os.PathLike | None = None,
    callbacks: tuple = (),
) -> dict:
    """Train ``base_model`` on ``blend``; write ``out_model`` (HF, safetensors), stats, the curve.

    ``callbacks`` are extra ``TrainerCallback``s (the MFU benchmark's profiler)."""
    import torch

    from cama.pack.dataset import BlendDataset
    from cama.preflight import check_blend
    from cama.train.data import PackedCollator
    from cama.train.metrics import plot_loss
    from cama.train.run import ModelInfo, fit

    problems = check_blend(blend, base_model)
    if problems:
        raise ConfigError(problems)
    spec = read_json(blend)
    info = ModelInfo.of(base_model)
    problems = S.check_positions(settings, spec.get("max_length"), info.max_positions)
    if problems:
        raise ConfigError(problems)

    def model():
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(
            str(base_model), dtype=torch.float32, attn_implementation=settings.attn_implementation
        )

    result = fit(
        key="pretrain",
        settings=settings,
        model_info=info,
        model=model,
        data=lambda n: BlendDataset(blend, seed=settings.seed, num_samples=n),
        collator=PackedCollator(info.pad_id, settings.seq_length),
        checkpoint_dir=checkpoint_dir,
        out_dir=out_model,
        tokenizer_dir=base_model,
        config_name=CONFIG_NAME,
        extra={"paths": {"blend": str(blend), "base_model": str(base_model), "out_model": str(out_model)}},
        derived={"blend_max_length": spec.get("max_length")},
        tensorboard_dir=tensorboard_dir,
        callbacks=callbacks,
    )
    if result.rank == 0:
        if out_stats:
            write_json(out_stats, result.stats)
        if out_curve:
            plot_loss(result.log_history, out_curve, title="pretraining loss")
    return result.stats


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m cama.pretrain.train", description=__doc__.split("\n")[0])
    p.add_argument("--blend", required=True, help="shards/blend.json from the pack stage")
    p.add_argument("--base-model", required=True, help="HF LLaMA folder (weights + tokenizer)")
    p.add_argument("--out-model", required=True, help="where the final HF weights go")
    p.add_argument("--checkpoint-dir", required=True, help="resumable checkpoints (not a rule output)")
    p.add_argument("--stats", default=None, help="stats.json")
    p.add_argument("--curve", default=None, help="loss curve PNG")
    p.add_argument("--tensorboard", default=None, help="TensorBoard folder")
    p.add_argument("--settings", default="{}", help="the pretrain section as JSON (or @file.json)")
    p.add_argument("--log-file", default=None, help="log file (rank 0; other ranks append .rankN)")
    a = p.parse_args(argv)
    from cama.train.run import setup_rank_logging

    setup_rank_logging(a.log_file)
    raw = a.settings
    try:
        settings = S.from_dict(json.loads(Path(raw[1:]).read_text() if raw.startswith("@") else raw))
        pretrain(
            blend=a.blend, base_model=a.base_model, out_model=a.out_model, checkpoint_dir=a.checkpoint_dir,
            settings=settings, out_stats=a.stats, out_curve=a.curve, tensorboard_dir=a.tensorboard,
        )  # fmt: skip
    except ConfigError as e:
        log.error("%s", e)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
    from cama.train.run import exit_finished_process

    exit_finished_process()

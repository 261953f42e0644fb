"""Continued pretraining: HF Trainer + DeepSpeed ZeRO over the packed blend, resumable.

Launch (``cama.pretrain.launch`` builds these; the ``pretrain`` rule runs it)::

    # one process (CPU or one GPU)
    python -m cama.pretrain.train --blend results/shards/blend.json --base-model results/pretrain/base \\
        --out-model results/pretrain/model --checkpoint-dir results/pretrain/checkpoints \\
        --stats results/pretrain/stats.json --settings '{"max_steps": 60}'
    # 2 processes on this node: gloo on CPU (the demo, CI), NCCL on GPUs
    python -m torch.distributed.run --standalone --nproc_per_node 2 -m cama.pretrain.train ...
    # or DeepSpeed's launcher
    deepspeed --num_gpus 2 --module cama.pretrain.train ...
    # several nodes in a Slurm allocation: see cama.pretrain.launch

The run reads top to bottom:

1. processes: rank, world size, backend (gloo without CUDA);
2. config: every problem at once, each naming its key; derived values (accumulation,
   precision, ZeRO stage and its stage-3 settings, optimizer) are resolved and logged;
3. ``TrainingArguments`` with the DeepSpeed dict, created *before* the model so that under
   ZeRO-3 ``from_pretrained`` builds the weights already partitioned;
4. data: the blend through ``cama.pack.dataset.BlendDataset``, no re-tokenization, drawn for
   exactly ``max_steps`` × global batch samples and read in order (the blend's order is
   already a seeded shuffle), so step k always trains on the same samples;
5. model: the base model in fp32 master weights, SDPA, gradient checkpointing, and with
   ``torch_compile`` its transformer blocks compiled (``cama.pretrain.compile``);
6. train, resuming from the last *complete* checkpoint in the checkpoint folder;
7. save: consolidated HF weights (a collective under ZeRO-3: every rank calls it), stats,
   the loss curve.

**Resume.** Checkpoints go to a folder the rule does not declare (Snakemake deletes declared
outputs before a run). Each holds the DeepSpeed/optimizer state, the scheduler, every rank's
RNG and the trainer state. After a checkpoint is fully written, all ranks meet at a barrier
and rank 0 writes ``cama_config.json`` (the resolved config): a checkpoint without it was
cut short by a kill and is ignored. The Trainer then skips the batch indices already
trained (without reading them), so no sample is repeated or skipped, provided the global
batch size is unchanged (checked, naming the key).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import re
import shutil
import socket
import time
import warnings
from pathlib import Path

from cama.errors import ConfigError
from cama.io import read_json, write_json
from cama.pretrain import config as C
from cama.pretrain.attention import resolve as resolve_sdpa
from cama.pretrain.attention import sdpa_context
from cama.pretrain.compile import compile_blocks
from cama.pretrain.deepspeed import (
    choose_stage,
    ds_config,
    fit_zero3,
    resolve_optimizer,
    resolve_precision,
)
from cama.pretrain.metrics import flops_per_token, mfu, peak_tflops, plot_loss
from cama.pretrain.model import copy_tokenizer, readable

log = logging.getLogger("cama.pretrain")

MARKER = "cama_config.json"  # written last into a checkpoint: its presence means "complete"
_CKPT = re.compile(r"^checkpoint-(\d+)$")


# ----------------------------------------------------------------------------- processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dist_env() -> tuple[int, int, int]:
    """(rank, local rank, world size). A lone process gets the variables torchrun would set."""
    if "RANK" not in os.environ:
        os.environ.update(
            {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1",
             "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}
        )  # fmt: skip
    return int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ["WORLD_SIZE"])


# ----------------------------------------------------------------------------- checkpoints


def complete_checkpoints(folder: str | os.PathLike) -> list[Path]:
    """``checkpoint-N`` folders that hold the completion marker, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _CKPT.match(p.name)) and (p / MARKER).is_file()]
    return [p for _, p in sorted(found)]


def last_checkpoint(folder: str | os.PathLike) -> Path | None:
    done = complete_checkpoints(folder)
    return done[-1] if done else None


def check_resume(previous: dict, current: dict) -> list[str]:
    """A resumed run must draw the same samples per step: same blend order and global batch."""
    problems = []
    before, now = previous.get("derived", {}), current.get("derived", {})
    if before.get("global_batch_size") != now.get("global_batch_size"):
        problems.append(
            f"pretrain.global_batch_size: {now.get('global_batch_size')} differs from "
            f"{before.get('global_batch_size')} in the checkpoint being resumed; the data position "
            "would not match (change it back, or start afresh by removing the checkpoint folder)"
        )
    for key in ("seed", "max_steps"):
        if previous.get("pretrain", {}).get(key) != current["pretrain"].get(key):
            problems.append(
                f"pretrain.{key}: {current['pretrain'].get(key)} differs from "
                f"{previous.get('pretrain', {}).get(key)} in the checkpoint being resumed (the blend order depends on it)"
            )
    return problems


# ----------------------------------------------------------------------------- data


class PackedCollator:
    """Right-pad packed samples; labels are -100 on padding so it carries no loss.

    With ``pad_to`` every batch has that length (fixed shapes); otherwise the longest sample.
    A batch with no padding gets no attention mask, so SDPA can take its causal fast path.
    ``sample_index`` (the blend position of each row) travels along for the data-order log.
    """

    def __init__(self, pad_id: int, pad_to: int | None = None):
        self.pad_id, self.pad_to = pad_id, pad_to

    def __call__(self, batch: list[dict]) -> dict:
        import torch

        n = max(len(b["input_ids"]) for b in batch)
        n = max(n, self.pad_to or 0)
        ids = torch.full((len(batch), n), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), n), dtype=torch.long)
        for r, b in enumerate(batch):
            t = torch.as_tensor(b["input_ids"], dtype=torch.long)  # (len,)
            ids[r, : t.numel()] = t
            mask[r, : t.numel()] = 1
        out = {"input_ids": ids, "labels": ids.masked_fill(mask == 0, -100)}
        if not bool(mask.all()):  # on the CPU, in the loader: no device sync
            out["attention_mask"] = mask
        if "sample_index" in batch[0]:
            out["sample_index"] = torch.tensor([b["sample_index"] for b in batch], dtype=torch.long)
        return out


class _WithIndex:
    """The blend with each item's position attached (for the data-order log)."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> dict:
        item = self.ds[i]
        item["sample_index"] = i + self.ds.skip
        return item


# ----------------------------------------------------------------------------- the trainer


def make_trainer_class():
    """The Trainer, with in-order sampling, token counting, MFU in the logs, a data-order log."""
    import torch
    from torch.utils.data import SequentialSampler
    from transformers import Trainer

    class CamaTrainer(Trainer):
        cama_flops_per_token = 0.0  # set after init: 6N + 6·L·d·s
        cama_peak: float | None = None
        cama_sample_log: Path | None = None
        cama_layers_hidden: tuple[int, int] = (0, 0)
        cama_non_embedding = 0

        def _get_train_sampler(self, train_dataset=None):
            # the blend's own order is the shuffle; keeping it makes step k's samples fixed
            return SequentialSampler(train_dataset if train_dataset is not None else self.train_dataset)

        def training_step(self, model, inputs, num_items_in_batch=None):
            index = inputs.pop("sample_index", None)
            if self.cama_sample_log is not None and index is not None:
                step = self.state.global_step + 1
                micro = self._cama_micro[1] + 1 if getattr(self, "_cama_micro", (0, 0))[0] == step else 0
                self._cama_micro = (step, micro)
                with open(self.cama_sample_log, "a") as f:  # tests only: a host copy per micro-batch
                    f.write(json.dumps({"step": step, "micro": micro, "ids": index.tolist()}) + "\n")
            labels = inputs["labels"]  # (batch, seq)
            if not hasattr(self, "_cama_tokens"):
                self._cama_tokens = torch.zeros((), dtype=torch.float64, device=labels.device)
                self._cama_seq_sum, self._cama_batches = 0, 0
            self._cama_tokens += (labels != -100).sum()  # stays on the device: no sync per step
            self._cama_seq_sum += labels.shape[1]
            self._cama_batches += 1
            return super().training_step(model, inputs, num_items_in_batch)

        def log(self, logs: dict, start_time: float | None = None) -> None:
            now = time.perf_counter()
            if "loss" in logs and hasattr(self, "_cama_tokens"):
                tokens = self._cama_tokens.clone()
                if torch.distributed.is_available() and torch.distributed.is_initialized():
                    torch.distributed.all_reduce(tokens)  # every rank logs, so every rank is here
                tokens = float(tokens.item())  # a sync point, once per logging step
                last = getattr(self, "_cama_last", (self._cama_t0, 0.0))
                dt = now - last[0]
                tok_s = (tokens - last[1]) / dt if dt > 0 else 0.0
                self._cama_last = (now, tokens)
                seq = self._cama_seq_sum / max(self._cama_batches, 1)
                layers, hidden = self.cama_layers_hidden
                ftok = flops_per_token(self.cama_non_embedding, layers, hidden, int(seq))
                logs["tokens_per_s"] = round(tok_s, 1)
                logs["tokens"] = int(tokens)
                value = mfu(tok_s, ftok, self.cama_peak, self.args.world_size)
                if value is not None:
                    logs["mfu"] = round(value, 4)
                if self.is_world_process_zero():
                    log.info(
                        "step %d/%d loss %.4f lr %.3g grad_norm %s tokens/s %.0f%s",
                        self.state.global_step, self.state.max_steps, logs["loss"],
                        logs.get("learning_rate", float("nan")), _fmt(logs.get("grad_norm")), tok_s,
                        f" mfu {100 * value:.1f}%" if value is not None else "",
                    )  # fmt: skip
            super().log(logs, start_time)

        def save_model(self, output_dir=None, _internal_call=False):
            # Inside a checkpoint the DeepSpeed state already holds the weights; gathering a
            # 16-bit copy too would cost a full all-gather and the model's size on disk each time.
            if _internal_call and self.is_deepspeed_enabled:
                return
            super().save_model(output_dir, _internal_call)

    return CamaTrainer


def _fmt(x) -> str:
    return "n/a" if x is None else f"{float(x):.3g}"


def make_callbacks(resolved_config: dict, rank: int):
    import torch
    from transformers import TrainerCallback

    class MarkComplete(TrainerCallback):
        """After every rank has written its part of a checkpoint, mark it complete."""

        def on_save(self, args, state, control, **kwargs):
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                torch.distributed.barrier()  # all ranks' shards and RNG files are on disk
            if rank == 0:
                folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                gbs = resolved_config["derived"]["global_batch_size"]
                write_json(folder / MARKER, {**resolved_config, "step": state.global_step,
                                             "samples_consumed": state.global_step * gbs})  # fmt: skip

    return [MarkComplete()]


# ----------------------------------------------------------------------------- the run


def pretrain(
    *,
    blend: str | os.PathLike,
    base_model: str | os.PathLike,
    out_model: str | os.PathLike,
    checkpoint_dir: str | os.PathLike,
    settings: C.TrainConfig,
    out_stats: str | os.PathLike | None = None,
    out_curve: str | os.PathLike | None = None,
    tensorboard_dir: str | os.PathLike | None = None,
) -> dict:
    """Train ``base_model`` on ``blend``; write ``out_model`` (HF, safetensors) and stats."""
    import torch

    # 1. processes ---------------------------------------------------------------------
    rank, local_rank, world = dist_env()
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local_rank)
    backend = "nccl" if cuda else "gloo"

    # 2. config ------------------------------------------------------------------------
    problems = C.check(settings, base_model=base_model, blend=blend, world_size=world)
    if problems:
        raise ConfigError(problems)
    ga, gbs, _ = C.batch_sizes(settings, world)
    from transformers import AutoConfig, AutoModelForCausalLM, TrainingArguments

    model_config = AutoConfig.from_pretrained(str(base_model))
    with torch.device("meta"):  # count parameters without allocating them
        n_params = sum(p.numel() for p in AutoModelForCausalLM.from_config(model_config).parameters())
    n_embed = model_config.vocab_size * model_config.hidden_size
    precision = resolve_precision(settings.precision, cuda, cuda and torch.cuda.is_bf16_supported())
    device_bytes = torch.cuda.get_device_properties(local_rank).total_memory if cuda else None
    stage = settings.zero.stage
    if stage == "auto":
        stage = choose_stage(n_params, world, device_bytes)
    if stage == 3:
        settings = dataclasses.replace(settings, zero=fit_zero3(settings.zero, n_params, world, device_bytes))
    optimizer = resolve_optimizer(settings, cuda)
    if optimizer == "deepspeed" and stage == 0:
        raise ConfigError("pretrain.optimizer: deepspeed needs zero.stage 1-3")
    blend_spec = read_json(blend)
    resolved_config = C.resolved(
        settings,
        derived={
            "world_size": world, "gradient_accumulation_steps": ga, "global_batch_size": gbs,
            "precision": precision, "zero_stage": stage, "optimizer": optimizer, "backend": backend,
            "sdpa_backend": resolve_sdpa(settings.sdpa_backend) if cuda else "cpu",
            "params": n_params, "non_embedding_params": n_params - n_embed,
            "samples": settings.max_steps * gbs, "blend_max_length": blend_spec.get("max_length"),
        },
        paths={"blend": str(blend), "base_model": str(base_model), "out_model": str(out_model)},
    )  # fmt: skip
    resume = last_checkpoint(checkpoint_dir)
    if resume is not None:
        problems = check_resume(read_json(resume / MARKER), resolved_config)
        if problems:
            raise ConfigError(problems)
    if rank == 0:
        log.info("resolved: %s", json.dumps(resolved_config["derived"]))
        log.info("resuming from %s" if resume else "no complete checkpoint in %s: starting afresh",
                 resume or checkpoint_dir)  # fmt: skip

    # 3. TrainingArguments (before the model: ZeRO-3 partitions it as it loads) ------------
    if not cuda:
        _skip_deepspeed_shm_op()
    if tensorboard_dir:
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(tensorboard_dir)
    report_to = ["tensorboard"] if tensorboard_dir and _has_tensorboard() else []
    min_lr = settings.min_lr_ratio > 0
    args = TrainingArguments(
        output_dir=str(checkpoint_dir),
        per_device_train_batch_size=settings.micro_batch_size,
        gradient_accumulation_steps=ga,
        max_steps=settings.max_steps,
        learning_rate=settings.lr,
        lr_scheduler_type="cosine_with_min_lr" if min_lr else "cosine",
        lr_scheduler_kwargs={"min_lr_rate": settings.min_lr_ratio} if min_lr else {},
        warmup_steps=settings.warmup_steps,
        weight_decay=settings.weight_decay,
        adam_beta1=settings.adam_beta1,
        adam_beta2=settings.adam_beta2,
        adam_epsilon=settings.adam_eps,
        max_grad_norm=settings.max_grad_norm,
        optim=optimizer if optimizer != "deepspeed" else "adamw_torch",
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        gradient_checkpointing=settings.gradient_checkpointing,
        **{_ckpt_kwargs_name(TrainingArguments): {"use_reentrant": False}},
        torch_compile=False,  # compile_blocks below, not the whole model (see cama.pretrain.compile)
        deepspeed=ds_config(settings, stage=stage, precision=precision, optimizer=optimizer, cuda=cuda),
        ddp_backend=backend,
        seed=settings.seed,
        logging_steps=settings.logging_steps,
        save_strategy="steps",
        save_steps=settings.save_steps,
        save_total_limit=settings.save_total_limit,
        report_to=report_to,
        disable_tqdm=True,
        dataloader_num_workers=settings.dataloader_workers,
        remove_unused_columns=False,  # the collator's sample_index is popped by the trainer
        use_cpu=not cuda,
    )
    # Asking for the world size starts the process group now (transformers does it lazily);
    # ZeRO-3's partitioned init inside from_pretrained needs it already up.
    assert args.world_size == world, (args.world_size, world)
    if args.deepspeed:
        import deepspeed

        deepspeed.init_distributed(dist_backend=backend)  # DeepSpeed's own handle on the same group

    # 4. data ----------------------------------------------------------------------------
    from cama.pack.dataset import BlendDataset

    train_ds = BlendDataset(blend, seed=settings.seed, num_samples=settings.max_steps * gbs)
    dataset = _WithIndex(train_ds)
    pad_id = model_config.eos_token_id if model_config.pad_token_id is None else model_config.pad_token_id
    collator = PackedCollator(int(pad_id if not isinstance(pad_id, list) else pad_id[0]), settings.seq_length)

    # 5. model ---------------------------------------------------------------------------
    model = AutoModelForCausalLM.from_pretrained(
        str(base_model), dtype=torch.float32, attn_implementation=settings.attn_implementation
    )  # fp32 master weights; bf16/fp16 come from autocast or DeepSpeed
    model.config.use_cache = False  # no KV cache while training
    if settings.torch_compile:
        n_blocks = compile_blocks(model, zero_stage=stage)
        if rank == 0:
            log.info("torch_compile: %d transformer blocks share one compiled graph", n_blocks)

    # 6. train ---------------------------------------------------------------------------
    trainer = make_trainer_class()(
        model=model, args=args, train_dataset=dataset, data_collator=collator,
        callbacks=make_callbacks(resolved_config, rank),
    )  # fmt: skip
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # our log line replaces its dict dump
    trainer.cama_peak = peak_tflops(torch.cuda.get_device_name(local_rank) if cuda else None, settings.peak_tflops)
    trainer.cama_layers_hidden = (model_config.num_hidden_layers, model_config.hidden_size)
    trainer.cama_non_embedding = n_params - n_embed
    trainer._cama_t0 = time.perf_counter()
    if settings.log_sample_ids:
        Path(checkpoint_dir).mkdir(parents=True, exist_ok=True)
        trainer.cama_sample_log = Path(checkpoint_dir) / f"samples.rank{rank}.jsonl"
    t0 = time.perf_counter()
    with sdpa_context(settings.sdpa_backend, cuda):  # chosen at trace time under torch.compile
        result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    wall = time.perf_counter() - t0

    # 7. save (a collective under ZeRO-3: every rank gathers, rank 0 writes) -------------
    save_final(trainer, out_model, base_model, resolved_config, precision, settings.max_shard_size, rank)
    history = trainer.state.log_history
    steps = [h for h in history if "loss" in h]
    session_steps = trainer.state.global_step - (int(resume.name.split("-")[1]) if resume else 0)
    tok = [h for h in steps if "tokens_per_s" in h]
    mfus = [h["mfu"] for h in steps if "mfu" in h]
    stats = {
        "steps": trainer.state.global_step,
        "resumed_from_step": int(resume.name.split("-")[1]) if resume else None,
        "session_steps": session_steps,
        "samples": trainer.state.global_step * gbs,
        "tokens": tok[-1]["tokens"] if tok else None,
        "final_loss": steps[-1]["loss"] if steps else None,
        "first_loss": steps[0]["loss"] if steps else None,
        "train_loss": result.training_loss,
        "wall_seconds": round(wall, 2),
        "tokens_per_s": round(sum(h["tokens_per_s"] for h in tok) / len(tok), 1) if tok else None,
        "mfu": round(sum(mfus) / len(mfus), 4) if mfus else None,
        "device": torch.cuda.get_device_name(local_rank) if cuda else "cpu",
        **resolved_config["derived"],
        "loss_curve": [
            {k: h[k] for k in ("step", "loss", "learning_rate", "grad_norm", "tokens_per_s", "mfu") if k in h}
            for h in steps
        ],
    }
    if rank == 0:
        if out_stats:
            write_json(out_stats, stats)
        if out_curve:
            plot_loss(history, out_curve)
        log.info("done: %d steps, final loss %s, %.1f s", stats["steps"], stats["final_loss"], wall)
    return stats


def _skip_deepspeed_shm_op() -> None:
    """On CPU, DeepSpeed JIT-compiles a shared-memory all-reduce op when its backend starts
    (about 90 s with a C++ compiler, a failure without one); gloo does the same job here."""
    import importlib

    try:  # not `import deepspeed.comm.torch as m`: that binds deepspeed.comm's `torch` attribute, the library
        ds_torch = importlib.import_module("deepspeed.comm.torch")
    except ImportError:
        return
    ds_torch.build_shm_op = lambda: None


def _ckpt_kwargs_name(args_class) -> str:
    """transformers 5.24 renamed gradient_checkpointing_kwargs; older 5.x (the GPU image's 5.17) lack the new name."""
    fields = getattr(args_class, "__dataclass_fields__", {})
    return "activation_checkpointing_kwargs" if "activation_checkpointing_kwargs" in fields else "gradient_checkpointing_kwargs"


def _has_tensorboard() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


def save_final(trainer, out_model, base_model, resolved_config, precision, max_shard_size, rank) -> None:
    """Consolidated HF weights in ``out_model``: every rank gathers, rank 0 writes atomically."""
    import torch

    if trainer.is_deepspeed_enabled:
        state_dict = trainer.accelerator.get_state_dict(trainer.deepspeed)  # collective under ZeRO-3
    else:
        state_dict = trainer.accelerator.get_state_dict(trainer.model)
    if rank == 0:
        model = trainer.accelerator.unwrap_model(trainer.model, keep_torch_compile=False)
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        if dtype is not None:  # the weights as trained; ZeRO-3's gathered copy already is 16-bit
            state_dict = {k: v.to(dtype) for k, v in state_dict.items()}
            model.config.dtype = dtype
        model.config.use_cache = True
        out = Path(out_model)
        tmp = out.with_name(out.name + f".tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(str(tmp), state_dict=state_dict, max_shard_size=max_shard_size)
        copy_tokenizer(base_model, tmp)
        write_json(tmp / "pretrain_config.json", resolved_config)
        readable(tmp)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
        log.info("saved %s", out)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


# ----------------------------------------------------------------------------- command line


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
    # torch.distributed's own FutureWarnings, raised from inside DeepSpeed on every step
    warnings.filterwarnings("ignore", message=r".*is deprecated\. Please use `torch\.distributed")
    raw = a.settings
    settings = C.from_dict(json.loads(Path(raw[1:]).read_text() if raw.startswith("@") else raw))
    rank = int(os.environ.get("RANK", 0))
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if a.log_file:
        path = a.log_file if rank == 0 else f"{a.log_file}.rank{rank}"
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(path))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format=f"%(asctime)s rank{rank} %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    try:
        pretrain(
            blend=a.blend, base_model=a.base_model, out_model=a.out_model, checkpoint_dir=a.checkpoint_dir,
            settings=settings, out_stats=a.stats, out_curve=a.curve, tensorboard_dir=a.tensorboard,
        )  # fmt: skip
    except ConfigError as e:
        log.error("%s", e)
        raise SystemExit(2) from None


def exit_finished_process() -> None:
    """Leave a process whose work is done without running C++ static destructors.

    In 1 of 4 CI runs of the demo (2026-11-28), a rank aborted at interpreter exit, after the
    model was saved and every rank had passed the last barrier ("terminate called without an
    active exception", SIGABRT), and torchrun then failed the finished job. Every output is
    already written atomically, so: tear the process group down, flush the logs, and exit 0.
    """
    import sys

    import torch

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
    exit_finished_process()

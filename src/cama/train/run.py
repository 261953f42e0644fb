"""``fit``: one training run under the HF Trainer and DeepSpeed ZeRO, resumable after ``kill -9``.

It reads top to bottom:

1. processes: rank, world size, backend (gloo without CUDA);
2. settings: every problem at once, each naming its key; derived values (accumulation,
   precision, ZeRO stage and its stage-3 settings, optimizer) are resolved and logged;
3. ``TrainingArguments`` with the DeepSpeed dict, created *before* the model so that under
   ZeRO-3 ``from_pretrained`` builds the weights already partitioned;
4. data: the stage's dataset for exactly ``max_steps`` × global batch items, read in order,
   so step k always trains on the same items;
5. model: the stage's factory (fp32 master weights), no KV cache, and with ``torch_compile``
   its transformer blocks compiled (``cama.train.compile``);
6. train, resuming from the last *complete* checkpoint in the checkpoint folder
   (``cama.train.trainer``);
7. save: the HF folder with the resolved config beside the weights (a collective under
   ZeRO-3: every rank calls it), and the run's stats.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cama.errors import ConfigError
from cama.io import read_json
from cama.train import settings as S
from cama.train.attention import resolve as resolve_sdpa
from cama.train.attention import sdpa_context
from cama.train.compile import compile_blocks
from cama.train.data import WithIndex
from cama.train.deepspeed import (
    choose_stage,
    ds_config,
    fit_zero3,
    resolve_optimizer,
    resolve_precision,
)
from cama.train.metrics import flops_per_token, peak_tflops
from cama.train.save import save_folder
from cama.train.trainer import (
    MARKER,
    check_resume,
    checkpoint_step,
    last_checkpoint,
    make_trainer_class,
    mark_complete_callback,
)

log = logging.getLogger("cama.train")


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


# ----------------------------------------------------------------------------- the model's size


@dataclass(frozen=True)
class ModelInfo:
    """What the core needs to know of a model before building it (stage choice, MFU)."""

    params: int
    """All parameters."""
    trainable: int
    """Parameters with gradients and optimizer state (all of them, or a LoRA's adapters)."""
    non_embedding: int
    """Parameters less the input embedding table (which costs no matmul)."""
    layers: int
    hidden: int
    max_positions: int | None
    pad_id: int
    """The id padding gets (the model's pad token, else its EOS); padding carries no loss."""

    @classmethod
    def of(cls, model_dir: str | os.PathLike) -> ModelInfo:
        """Count an HF model folder's parameters on the meta device (nothing is allocated)."""
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM

        config = AutoConfig.from_pretrained(str(model_dir))
        with torch.device("meta"):
            n = sum(p.numel() for p in AutoModelForCausalLM.from_config(config).parameters())
        pad = config.pad_token_id if config.pad_token_id is not None else config.eos_token_id
        pad = pad[0] if isinstance(pad, list) else pad
        return cls(params=n, trainable=n, non_embedding=n - config.vocab_size * config.hidden_size,
                   layers=config.num_hidden_layers, hidden=config.hidden_size,
                   max_positions=getattr(config, "max_position_embeddings", None), pad_id=int(pad or 0))  # fmt: skip

    def flops_per_token(self, seq: int) -> float:
        """Full training: 6·N_non-embedding + 6·L·d·s (ANCHORS)."""
        return flops_per_token(self.non_embedding, self.layers, self.hidden, seq)


@dataclass
class Result:
    stats: dict
    """Steps, losses, tokens/s, MFU, the derived settings, the loss (and validation) curve."""
    log_history: list[dict]
    """The Trainer's log, for plots."""
    rank: int


# ----------------------------------------------------------------------------- the run


def fit(
    *,
    key: str,
    settings: S.TrainSettings,
    model_info: ModelInfo,
    model: Callable[[], Any],
    data: Callable[[int], Any],
    collator: Callable[[list[dict]], dict],
    checkpoint_dir: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    tokenizer_dir: str | os.PathLike | None = None,
    config_name: str = "train_config.json",
    extra: dict | None = None,
    derived: dict | None = None,
    eval_data: Any = None,
    eval_steps: int | None = None,
    eval_on_start: bool = False,
    flops: Callable[[int], float] | None = None,
    tensorboard_dir: str | os.PathLike | None = None,
    callbacks: Sequence[Any] = (),
    resume_keys: tuple[str, ...] = ("seed", "max_steps"),
) -> Result:
    """Train ``model()`` on ``data(n)`` under ``settings``; see ``cama.train`` for each argument."""
    import torch

    # 1. processes ---------------------------------------------------------------------
    rank, local_rank, world = dist_env()
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local_rank)
    backend = "nccl" if cuda else "gloo"

    # 2. settings ------------------------------------------------------------------------
    ga, gbs, problems = S.batch_sizes(settings, world, key)
    problems += S.basic_problems(settings, key)
    if problems:
        raise ConfigError(problems)
    from transformers import TrainingArguments

    precision = resolve_precision(settings.precision, cuda, cuda and torch.cuda.is_bf16_supported())
    device_bytes = torch.cuda.get_device_properties(local_rank).total_memory if cuda else None
    stage = settings.zero.stage
    if stage == "auto":
        stage = choose_stage(model_info.params, world, device_bytes, trainable=model_info.trainable)
    if stage == 3:
        zero = fit_zero3(settings.zero, model_info.params, world, device_bytes)
        settings = dataclasses.replace(settings, zero=zero)
    optimizer = resolve_optimizer(settings, cuda)
    if optimizer == "deepspeed" and stage == 0:
        raise ConfigError(f"{key}.optimizer: deepspeed needs zero.stage 1-3")
    resolved_config = S.resolved(
        settings, key,
        derived={
            "world_size": world, "gradient_accumulation_steps": ga, "global_batch_size": gbs,
            "precision": precision, "zero_stage": stage, "optimizer": optimizer, "backend": backend,
            "sdpa_backend": resolve_sdpa(settings.sdpa_backend) if cuda else "cpu",
            "params": model_info.params, "trainable_params": model_info.trainable,
            "non_embedding_params": model_info.non_embedding, "samples": settings.max_steps * gbs,
            **(derived or {}),
        },
        **(extra or {}),
    )  # fmt: skip
    resume = last_checkpoint(checkpoint_dir)
    if resume is not None:
        problems = check_resume(read_json(resume / MARKER), resolved_config, key, resume_keys)
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
    evaluate = eval_data is not None and eval_steps
    args = TrainingArguments(
        output_dir=str(checkpoint_dir),
        per_device_train_batch_size=settings.micro_batch_size,
        per_device_eval_batch_size=settings.micro_batch_size,
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
        torch_compile=False,  # compile_blocks below, not the whole model (see cama.train.compile)
        deepspeed=ds_config(settings, stage=stage, precision=precision, optimizer=optimizer, cuda=cuda),
        ddp_backend=backend,
        seed=settings.seed,
        logging_steps=settings.logging_steps,
        save_strategy="steps",
        save_steps=settings.save_steps,
        save_total_limit=settings.save_total_limit,
        eval_strategy="steps" if evaluate else "no",
        eval_steps=eval_steps if evaluate else None,
        eval_on_start=bool(evaluate and eval_on_start),  # the curve starts at the untuned model's loss
        prediction_loss_only=True,
        report_to=report_to,
        disable_tqdm=True,
        dataloader_num_workers=settings.dataloader_workers,
        remove_unused_columns=False,  # the collator's sample_index is popped by the trainer
        # pinned batches copied without blocking the host: the next step is queued while this one runs
        accelerator_config={"non_blocking": cuda},
        use_cpu=not cuda,
    )
    # Asking for the world size starts the process group now (transformers does it lazily);
    # ZeRO-3's partitioned init inside from_pretrained needs it already up.
    if args.world_size != world:
        raise RuntimeError(f"the Trainer sees {args.world_size} processes, the launcher started {world}")
    if args.deepspeed:
        import deepspeed

        deepspeed.init_distributed(dist_backend=backend)  # DeepSpeed's own handle on the same group

    # 4. data ----------------------------------------------------------------------------
    dataset = WithIndex(data(settings.max_steps * gbs))

    # 5. model ---------------------------------------------------------------------------
    net = model()
    net.config.use_cache = False  # no KV cache while training
    if settings.torch_compile:
        n_blocks = compile_blocks(net, zero_stage=stage)
        if rank == 0:
            log.info("torch_compile: %d transformer blocks share one compiled graph", n_blocks)

    # 6. train ---------------------------------------------------------------------------
    trainer = make_trainer_class()(
        model=net, args=args, train_dataset=dataset, eval_dataset=eval_data if evaluate else None,
        data_collator=collator, callbacks=[mark_complete_callback(resolved_config, rank, gbs), *callbacks],
    )  # fmt: skip
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # our log line replaces its dict dump
    trainer.cama_peak = peak_tflops(torch.cuda.get_device_name(local_rank) if cuda else None, settings.peak_tflops)
    trainer.cama_flops_per_token = flops or model_info.flops_per_token
    trainer._cama_t0 = time.perf_counter()
    if settings.log_sample_ids:
        Path(checkpoint_dir).mkdir(parents=True, exist_ok=True)
        trainer.cama_sample_log = Path(checkpoint_dir) / f"samples.rank{rank}.jsonl"
    t0 = time.perf_counter()
    with sdpa_context(settings.sdpa_backend, cuda):  # chosen at trace time under torch.compile
        result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    wall = time.perf_counter() - t0

    # 7. save (a collective under ZeRO-3: every rank gathers, rank 0 writes) -------------
    if out_dir is not None:
        save_folder(trainer, out_dir, rank=rank, precision=precision, files={config_name: resolved_config},
                    tokenizer_dir=tokenizer_dir, max_shard_size=settings.max_shard_size)  # fmt: skip
    history = trainer.state.log_history
    stats = run_stats(history, trainer.state.global_step, checkpoint_step(resume), gbs, result.training_loss, wall)
    stats["device"] = torch.cuda.get_device_name(local_rank) if cuda else "cpu"
    stats.update(resolved_config["derived"])
    if rank == 0:
        log.info("done: %d steps, final loss %s, %.1f s", stats["steps"], stats["final_loss"], wall)
    return Result(stats=stats, log_history=history, rank=rank)


def run_stats(history: list[dict], steps: int, resumed: int, gbs: int, train_loss: float, wall: float) -> dict:
    """The numbers of a run from the Trainer's log: losses, tokens/s, MFU, the curves."""
    logged = [h for h in history if "loss" in h]
    tok = [h for h in logged if "tokens_per_s" in h]
    mfus = [h["mfu"] for h in logged if "mfu" in h]
    evals = [{"step": h["step"], "eval_loss": h["eval_loss"]} for h in history if "eval_loss" in h]
    return {
        "steps": steps,
        "resumed_from_step": resumed or None,
        "session_steps": steps - resumed,
        "samples": steps * gbs,
        "tokens": tok[-1]["tokens"] if tok else None,
        "final_loss": logged[-1]["loss"] if logged else None,
        "first_loss": logged[0]["loss"] if logged else None,
        "train_loss": train_loss,
        "final_eval_loss": evals[-1]["eval_loss"] if evals else None,
        "wall_seconds": round(wall, 2),
        "tokens_per_s": round(sum(h["tokens_per_s"] for h in tok) / len(tok), 1) if tok else None,
        "mfu": round(sum(mfus) / len(mfus), 4) if mfus else None,
        "loss_curve": [
            {k: h[k] for k in ("step", "loss", "learning_rate", "grad_norm", "tokens_per_s", "mfu") if k in h}
            for h in logged
        ],
        "eval_curve": evals,
    }


# ----------------------------------------------------------------------------- helpers


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


def setup_rank_logging(log_file: str | os.PathLike | None) -> int:
    """Log to stderr and ``log_file`` (rank 0; other ranks append ``.rankN``, warnings only).

    Returns the rank. Also quiets torch.distributed's FutureWarnings that DeepSpeed raises
    on every step.
    """
    warnings.filterwarnings("ignore", message=r".*is deprecated\. Please use `torch\.distributed")
    rank = int(os.environ.get("RANK", 0))
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_file:
        path = log_file if rank == 0 else f"{log_file}.rank{rank}"
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(path))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format=f"%(asctime)s rank{rank} %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    return rank


def exit_finished_process(status: int = 0) -> None:
    """Leave a process whose work is done without running C++ static destructors.

    In 1 of 4 CI runs of the demo (2026-11-28), a rank aborted at interpreter exit, after the
    model was saved and every rank had passed the last barrier ("terminate called without an
    active exception", SIGABRT), and torchrun then failed the finished job. Every output is
    already written atomically, so: tear the process group down, flush the logs, and exit.
    """
    import torch

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def add_stage_arguments(p, section: str) -> None:
    """The options every training module takes after its own inputs (``--settings`` is ``section``)."""
    p.add_argument("--checkpoint-dir", required=True, help="resumable checkpoints (not a rule output)")
    p.add_argument("--stats", default=None, help="stats.json")
    p.add_argument("--curve", default=None, help="loss curve PNG")
    p.add_argument("--tensorboard", default=None, help="TensorBoard folder")
    p.add_argument("--settings", default="{}", help=f"the {section} section as JSON (or @file.json)")
    p.add_argument("--log-file", default=None, help="log file (rank 0; other ranks append .rankN)")


def run_stage(args, settings_from: Callable[[dict], Any], train: Callable[[Any], Any]) -> None:
    """A training module's main: logging, the settings from ``--settings``, ``train(settings)``;
    a ``ConfigError`` is logged and exits 2 (no traceback)."""
    setup_rank_logging(args.log_file)
    raw = args.settings
    try:
        train(settings_from(json.loads(Path(raw[1:]).read_text() if raw.startswith("@") else raw)))
    except ConfigError as e:
        log.error("%s", e)
        raise SystemExit(2) from None

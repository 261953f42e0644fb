"""Settings of the pretraining stage, as dataclasses with a docstring per field (after litgpt).

The workflow config's ``model`` and ``pretrain`` sections map onto ``ModelInit`` and
``TrainConfig``; ``from_dict`` names any unknown key. ``check`` gathers every problem that
needs the model, the blend or the world size to see (a base model path that does not
exist, a sequence longer than the model's positions, a batch size that does not divide)
and reports them together, each naming its key, before any process group is started.

The resolved config (``resolved(...)``) is written beside every checkpoint and the final
model, so a folder of weights always says how it was made.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from cama.errors import ConfigError


@dataclass
class ModelInit:
    """A LLaMA initialised from scratch (the demo, and the GPU benchmark), with a fixed seed."""

    layers: int = 2
    """Transformer blocks (``num_hidden_layers``)."""
    hidden_size: int = 128
    """Width of the residual stream."""
    heads: int = 4
    """Attention heads; must divide ``hidden_size``."""
    kv_heads: int = 2
    """Key/value heads (grouped-query attention); must divide ``heads``."""
    intermediate_size: int = 344
    """Width of the SwiGLU MLP (LLaMA uses about 8/3 × hidden, rounded)."""
    max_position_embeddings: int = 1024
    """Longest sequence the model is built for (RoPE positions)."""
    rope_theta: float = 10000.0
    """RoPE base, LLaMA-1/2's value."""
    rms_norm_eps: float = 1e-5
    """RMSNorm epsilon."""
    initializer_range: float = 0.02
    """Std of the normal init of every weight matrix."""
    seed: int = 0
    """Seeds the initial weights: the same seed gives byte-identical weights."""


@dataclass
class ZeroConfig:
    """DeepSpeed ZeRO. ``null`` for a size lets DeepSpeed (or transformers' "auto") choose."""

    stage: Literal["auto", 0, 1, 2, 3] = 3
    """0 = no DeepSpeed (plain DDP); 2 = optimizer state and gradients partitioned; 3 = also the
    parameters (needed when the weights themselves do not fit one device, as for 13B).
    auto: 0 when the model states fit one device, else 2 when they fit partitioned, else 3."""
    offload_optimizer: Literal["none", "cpu"] = "none"
    """Keep the optimizer state (and its step) on the CPU, as the seed did on V100s."""
    offload_param: Literal["none", "cpu"] = "none"
    """Stage 3 only: keep parameters on the CPU between uses."""
    overlap_comm: bool | None = None
    """Overlap gradient reduction with the backward pass (null: DeepSpeed's default)."""
    contiguous_gradients: bool = True
    """Copy gradients into one buffer as they are made (less fragmentation)."""
    reduce_bucket_size: int | None = None
    """Elements per gradient reduce bucket (null: "auto", hidden²)."""
    allgather_bucket_size: int | None = None
    """Stage 2: elements per parameter all-gather bucket."""
    stage3_prefetch_bucket_size: int | None = None
    """Stage 3: elements of parameters fetched ahead (null: "auto", 0.9·hidden²)."""
    stage3_param_persistence_threshold: int | None = None
    """Stage 3: parameters smaller than this stay whole on every rank (null: "auto", 10·hidden).
    A very large value keeps every parameter resident: ZeRO-3 then partitions only the
    optimizer state and gradients, which is what a model that fits wants."""
    stage3_max_live_parameters: int | None = None
    """Stage 3: most parameter elements gathered at once."""
    stage3_max_reuse_distance: int | None = None
    """Stage 3: keep a gathered parameter if it is used again within this many elements."""
    sub_group_size: int | None = None
    """Stage 3: optimizer step in groups of this many elements (bounds the offload buffers)."""


@dataclass
class TrainConfig:
    """Continued pretraining. Defaults follow the seed (CaMA) where it made sense."""

    max_steps: int = 100
    """Optimizer steps to train. The blend is drawn for exactly max_steps × global batch samples."""
    micro_batch_size: int = 4
    """Samples per process per forward pass (the seed: 20 on V100-32GB at length 1024)."""
    gradient_accumulation_steps: int | None = None
    """Micro-batches per optimizer step. null: global_batch_size / (micro_batch_size × processes)."""
    global_batch_size: int | None = None
    """Samples per optimizer step over all processes. null: micro × accumulation × processes.
    When both this and gradient_accumulation_steps are given they must agree."""
    seq_length: int | None = None
    """Pad every batch to this length (fixed shapes suit torch.compile). null: the longest
    sample of each batch. Must hold the blend's samples (pack.max_length) and fit the
    model's max_position_embeddings."""
    lr: float = 1.5e-5
    """Peak learning rate (the seed's 1.5e-5 for continued pretraining of a 13B; a model
    trained from scratch wants ~1e-3)."""
    min_lr_ratio: float = 0.0
    """The cosine decays to lr × this at max_steps."""
    warmup_steps: int = 300
    """Linear warm-up steps (the seed: 300)."""
    weight_decay: float = 0.1
    """AdamW decoupled weight decay (the seed: 0.1)."""
    adam_beta1: float = 0.9
    """AdamW β1."""
    adam_beta2: float = 0.95
    """AdamW β2 (the seed: 0.95)."""
    adam_eps: float = 1e-8
    """AdamW ε."""
    max_grad_norm: float = 1.0
    """Clip the global gradient norm to this (0: off)."""
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    """Mixed precision. auto: bf16 on a GPU that has it, fp16 on older GPUs, fp32 on CPU."""
    gradient_checkpointing: bool = True
    """Recompute activations in the backward pass: ~1/3 more compute for far less memory."""
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] = "sdpa"
    """Attention kernel; sdpa picks FlashAttention-class kernels on GPU."""
    sdpa_backend: Literal["auto", "flash", "cudnn", "efficient", "math"] = "auto"
    """With sdpa on a GPU, the kernel tried first (the others stay behind it as fallbacks).
    auto: the one measured fastest at the pretraining shape (``cama.pretrain.attention``)."""
    torch_compile: bool = False
    """torch.compile each transformer block, the final norm and the loss (GPU; any ZeRO stage).
    Not the whole model: see ``cama.pretrain.compile`` for why."""
    optimizer: Literal["auto", "adamw_torch", "adamw_torch_fused", "deepspeed"] = "auto"
    """auto: fused torch AdamW on GPU, torch AdamW on CPU, DeepSpeed's CPU Adam with
    optimizer offload. deepspeed: DeepSpeed builds its own (FusedAdam, JIT-compiled)."""
    zero: ZeroConfig = field(default_factory=ZeroConfig)
    """DeepSpeed ZeRO settings."""
    seed: int = 0
    """Seeds the blend order and every RNG of the run."""
    save_steps: int = 50
    """Write a resumable checkpoint every this many steps (the seed: 100)."""
    save_total_limit: int = 2
    """Checkpoints kept; at least 2, so a kill during a save leaves a complete one."""
    logging_steps: int = 1
    """Log loss, lr, grad norm, tokens/s and MFU every this many steps."""
    dataloader_workers: int = 1
    """Worker processes per rank reading the shards (0: read in the training process)."""
    peak_tflops: float | None = None
    """The device's dense peak for MFU. null: looked up from the GPU name (H100/H200 989,
    A100 312, V100 125 in bf16/fp16); on CPU MFU is not reported."""
    max_shard_size: str = "5GB"
    """Largest safetensors file of the final model; larger models are written in shards."""
    log_sample_ids: bool = False
    """Write the blend index of every trained sample (checkpoint dir, one file per rank):
    the resume test compares them with an uninterrupted run."""


def _from_dict(cls, data: dict | None, key: str, problems: list[str]):
    data = dict(data or {})
    known = {f.name: f for f in fields(cls)}
    for name in sorted(set(data) - set(known)):
        problems.append(f"{key}.{name}: unknown key")
    kwargs = {}
    for name, value in data.items():
        if name not in known:
            continue
        factory = known[name].default_factory  # a nested section, e.g. pretrain.zero
        if isinstance(factory, type) and dataclasses.is_dataclass(factory) and isinstance(value, dict):
            value = _from_dict(factory, value, f"{key}.{name}", problems)
        kwargs[name] = value
    return cls(**kwargs)


def from_dict(section: dict | None, key: str = "pretrain") -> TrainConfig:
    """``TrainConfig`` from the workflow config's ``pretrain`` section; unknown keys are errors."""
    problems: list[str] = []
    cfg = _from_dict(TrainConfig, section, key, problems)
    if problems:
        raise ConfigError(problems)
    return cfg


def model_init_from_dict(section: dict | None, key: str = "model.init") -> ModelInit:
    """``ModelInit`` from ``model.init``; unknown keys are errors."""
    problems: list[str] = []
    init = _from_dict(ModelInit, section, key, problems)
    if problems:
        raise ConfigError(problems)
    return init


def check_model_init(init: ModelInit, key: str = "model.init") -> list[str]:
    """Shape problems of a model to initialise, each naming its key."""
    problems = []
    if init.hidden_size % init.heads:
        problems.append(f"{key}.heads: {init.heads} does not divide hidden_size {init.hidden_size}")
    if init.heads % init.kv_heads:
        problems.append(f"{key}.kv_heads: {init.kv_heads} does not divide heads {init.heads}")
    if init.hidden_size // max(init.heads, 1) % 2:
        problems.append(f"{key}.heads: head size {init.hidden_size // init.heads} must be even for RoPE")
    return problems


def batch_sizes(cfg: TrainConfig, world_size: int, key: str = "pretrain") -> tuple[int, int, list[str]]:
    """(gradient accumulation, global batch, problems) for ``world_size`` processes."""
    problems = []
    per_step = cfg.micro_batch_size * world_size
    ga, gbs = cfg.gradient_accumulation_steps, cfg.global_batch_size
    if gbs is not None:
        if gbs % per_step:
            problems.append(
                f"{key}.global_batch_size: {gbs} is not divisible by micro_batch_size "
                f"{cfg.micro_batch_size} × {world_size} processes = {per_step}"
            )
            return 1, gbs, problems
        if ga is not None and ga != gbs // per_step:
            problems.append(
                f"{key}.gradient_accumulation_steps: {ga} disagrees with global_batch_size {gbs} / "
                f"(micro_batch_size {cfg.micro_batch_size} × {world_size} processes) = {gbs // per_step}"
            )
        return gbs // per_step, gbs, problems
    ga = ga or 1
    return ga, ga * per_step, problems


def check(
    cfg: TrainConfig,
    *,
    base_model: str | os.PathLike | None,
    blend: str | os.PathLike | None,
    world_size: int,
    key: str = "pretrain",
    base_key: str = "model.base",
) -> list[str]:
    """Every problem that needs the files or the world size to see, each naming its key."""
    problems: list[str] = []
    max_positions = None
    if not base_model:
        problems.append(f"{base_key}: no base model path (set it, or leave it null for the demo's init)")
    else:
        config_json = Path(base_model) / "config.json"
        if not Path(base_model).exists():
            problems.append(f"{base_key}: {base_model} does not exist")
        elif not config_json.is_file():
            problems.append(f"{base_key}: {base_model} has no config.json (not an HF model folder)")
        else:
            max_positions = json.loads(config_json.read_text()).get("max_position_embeddings")
    blend_length = None
    if blend is not None:
        if not Path(blend).is_file():
            problems.append(f"{key}: blend {blend} not found (run the pack stage first)")
        else:
            blend_length = json.loads(Path(blend).read_text()).get("max_length")
    seq = cfg.seq_length or blend_length
    seq_key = f"{key}.seq_length" if cfg.seq_length else "pack.max_length (pretrain.seq_length: null)"
    if seq and max_positions and seq > max_positions:
        problems.append(
            f"{seq_key}: {seq} exceeds the model's max_position_embeddings {max_positions} "
            f"({Path(str(base_model)) / 'config.json'})"
        )
    if cfg.seq_length and blend_length and cfg.seq_length < blend_length:
        problems.append(
            f"{key}.seq_length: {cfg.seq_length} is shorter than the blend's samples "
            f"(pack.max_length {blend_length}); raise it or leave it null"
        )
    problems += basic_problems(cfg, key)
    problems += batch_sizes(cfg, world_size, key)[2]
    return problems


def basic_problems(cfg: TrainConfig, key: str = "pretrain") -> list[str]:
    """Problems visible in the config alone."""
    problems = []
    for name in ("max_steps", "micro_batch_size", "save_steps", "logging_steps"):
        if getattr(cfg, name) < 1:
            problems.append(f"{key}.{name}: {getattr(cfg, name)} must be at least 1")
    if cfg.save_total_limit < 2:
        problems.append(
            f"{key}.save_total_limit: {cfg.save_total_limit}; keep at least 2 so that a kill during "
            "a save still leaves a complete checkpoint"
        )
    z = cfg.zero
    if z.offload_param != "none" and z.stage not in (3, "auto"):
        problems.append(f"{key}.zero.offload_param: needs zero.stage 3, not {z.stage}")
    if z.offload_optimizer != "none" and z.stage == 0:
        problems.append(f"{key}.zero.offload_optimizer: needs DeepSpeed (zero.stage 1-3), not 0")
    if not 0 <= cfg.min_lr_ratio <= 1:
        problems.append(f"{key}.min_lr_ratio: {cfg.min_lr_ratio} is outside 0..1")
    return problems


def resolved(cfg: TrainConfig, **extra: Any) -> dict:
    """The config as run, plus what was derived (world size, accumulation, precision ...)."""
    return {"pretrain": asdict(cfg), **extra}


def to_dict(cfg: TrainConfig) -> dict:
    return asdict(cfg)

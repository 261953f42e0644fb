"""Training settings, as dataclasses with a docstring per field (after litgpt), and their checks.

The fields mirror a config section one for one (``pretrain`` for continued pretraining) and
take their defaults from the schema (``src/cama/resources/schema.yaml``), their one home
(``cama.config.section``). ``from_dict`` builds the object from a (partial) section, checked
against the schema first, every problem named by its key.

``batch_sizes`` and ``basic_problems`` gather the problems that the JSON schema cannot see,
each naming its key, before any process group is started.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from cama.config import from_section, section


@dataclass(frozen=True)
@section("pretrain.zero")
class ZeroSettings:
    """DeepSpeed ZeRO. ``null`` for a size lets DeepSpeed (or transformers' "auto") choose."""

    stage: Literal["auto", 0, 1, 2, 3]
    """0 = no DeepSpeed (plain DDP); 2 = optimizer state and gradients partitioned; 3 = also the
    parameters (needed when the weights themselves do not fit one device, as for 13B).
    auto: 0 when the model states fit one device, else 2 when they fit partitioned, else 3."""
    offload_optimizer: Literal["none", "cpu"]
    """Keep the optimizer state (and its step) on the CPU, as the seed did on V100s."""
    offload_param: Literal["none", "cpu"]
    """Stage 3 only: keep parameters on the CPU between uses."""
    overlap_comm: bool | None
    """Overlap gradient reduction with the backward pass (null: DeepSpeed's default)."""
    contiguous_gradients: bool
    """Copy gradients into one buffer as they are made (less fragmentation)."""
    reduce_bucket_size: int | None
    """Elements per gradient reduce bucket (null: "auto", hidden²)."""
    allgather_bucket_size: int | None
    """Stage 2: elements per parameter all-gather bucket."""
    stage3_prefetch_bucket_size: int | None
    """Stage 3: elements of parameters fetched ahead (null: "auto", 0.9·hidden²)."""
    stage3_param_persistence_threshold: int | None
    """Stage 3: parameters smaller than this stay whole on every rank (null: "auto", 10·hidden).
    A very large value keeps every parameter resident: ZeRO-3 then partitions only the
    optimizer state and gradients, which is what a model that fits wants."""
    stage3_max_live_parameters: int | None
    """Stage 3: most parameter elements gathered at once."""
    stage3_max_reuse_distance: int | None
    """Stage 3: keep a gathered parameter if it is used again within this many elements."""
    sub_group_size: int | None
    """Stage 3: optimizer step in groups of this many elements (bounds the offload buffers)."""


@dataclass(frozen=True)
@section("pretrain")
class TrainSettings:
    """One training run: batch, schedule, AdamW, precision, kernels, ZeRO, checkpoints, logs.

    The seed's (CaMA's) values are the schema's defaults for continued pretraining.
    """

    max_steps: int
    """Optimizer steps to train. The data is drawn for exactly max_steps × global batch samples."""
    micro_batch_size: int
    """Samples per process per forward pass (the seed: 20 on V100-32GB at length 1024)."""
    gradient_accumulation_steps: int | None
    """Micro-batches per optimizer step. null: global_batch_size / (micro_batch_size × processes)."""
    global_batch_size: int | None
    """Samples per optimizer step over all processes. null: micro × accumulation × processes.
    When both this and gradient_accumulation_steps are given they must agree."""
    seq_length: int | None
    """Pad every batch to this length (fixed shapes suit torch.compile). null: the longest
    sample of each batch. Must hold the samples and fit the model's max_position_embeddings."""
    lr: float
    """Peak learning rate (the seed's 1.5e-5 for continued pretraining of a 13B; a model
    trained from scratch wants ~1e-3)."""
    min_lr_ratio: float
    """The cosine decays to lr × this at max_steps."""
    warmup_steps: int
    """Linear warm-up steps (the seed: 300)."""
    weight_decay: float
    """AdamW decoupled weight decay (the seed: 0.1)."""
    adam_beta1: float
    """AdamW β1."""
    adam_beta2: float
    """AdamW β2 (the seed: 0.95)."""
    adam_eps: float
    """AdamW ε."""
    max_grad_norm: float
    """Clip the global gradient norm to this (0: off)."""
    precision: Literal["auto", "bf16", "fp16", "fp32"]
    """Mixed precision. auto: bf16 on a GPU that has it, fp16 on older GPUs, fp32 on CPU."""
    gradient_checkpointing: bool
    """Recompute activations in the backward pass: ~1/3 more compute for far less memory."""
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"]
    """Attention kernel; sdpa picks FlashAttention-class kernels on GPU."""
    sdpa_backend: Literal["auto", "flash", "cudnn", "efficient", "math"]
    """With sdpa on a GPU, the kernel tried first (the others stay behind it as fallbacks).
    auto: the one measured fastest at the pretraining shape (``cama.train.attention``)."""
    torch_compile: bool
    """torch.compile each transformer block, the final norm and the loss (GPU; any ZeRO stage).
    Not the whole model: see ``cama.train.compile`` for why."""
    optimizer: Literal["auto", "adamw_torch", "adamw_torch_fused", "deepspeed"]
    """auto: fused torch AdamW on GPU, torch AdamW on CPU, DeepSpeed's CPU Adam with
    optimizer offload. deepspeed: DeepSpeed builds its own (FusedAdam, JIT-compiled)."""
    zero: ZeroSettings
    """DeepSpeed ZeRO settings."""
    seed: int
    """Seeds the data order and every RNG of the run."""
    save_steps: int
    """Write a resumable checkpoint every this many steps (the seed: 100)."""
    save_total_limit: int
    """Checkpoints kept; at least 2, so a kill during a save leaves a complete one."""
    logging_steps: int
    """Log loss, lr, grad norm, tokens/s and MFU every this many steps."""
    dataloader_workers: int
    """Worker processes per rank reading the data (0: read in the training process)."""
    peak_tflops: float | None
    """The device's dense peak for MFU. null: looked up from the GPU name (H100/H200 989,
    A100 312, V100 125 in bf16/fp16); on CPU MFU is not reported."""
    max_shard_size: str
    """Largest safetensors file of the final model; larger models are written in shards."""
    log_sample_ids: bool
    """Write the data index of every trained sample (checkpoint dir, one file per rank):
    the resume test compares them with an uninterrupted run."""


def from_dict(values: dict | None = None, key: str = "pretrain", **fixed) -> TrainSettings:
    """``TrainSettings`` from a (partial) section: unknown keys are errors, the rest from the schema."""
    return from_section(TrainSettings, values, key, **fixed)


def batch_sizes(cfg: TrainSettings, world_size: int, key: str = "pretrain") -> tuple[int, int, list[str]]:
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


def basic_problems(cfg: TrainSettings, key: str = "pretrain") -> list[str]:
    """Problems visible in the settings alone (the schema checks each value's range)."""
    problems = []
    z = cfg.zero
    if z.offload_param != "none" and z.stage not in (3, "auto"):
        problems.append(f"{key}.zero.offload_param: needs zero.stage 3, not {z.stage}")
    if z.offload_optimizer != "none" and z.stage == 0:
        problems.append(f"{key}.zero.offload_optimizer: needs DeepSpeed (zero.stage 1-3), not 0")
    if cfg.optimizer == "deepspeed" and z.stage == 0:
        problems.append(f"{key}.optimizer: deepspeed needs zero.stage 1-3, not 0")
    return problems


def check_positions(cfg: TrainSettings, sample_length: int | None, max_positions: int | None,
                    key: str = "pretrain", length_key: str = "pack.max_length") -> list[str]:
    """The padded length must hold the samples and fit the model's positions."""
    problems = []
    seq = cfg.seq_length or sample_length
    seq_key = f"{key}.seq_length" if cfg.seq_length else f"{length_key} ({key}.seq_length: null)"
    if seq and max_positions and seq > max_positions:
        problems.append(f"{seq_key}: {seq} exceeds the model's max_position_embeddings {max_positions}")
    if cfg.seq_length and sample_length and cfg.seq_length < sample_length:
        problems.append(
            f"{key}.seq_length: {cfg.seq_length} is shorter than the samples "
            f"({length_key} {sample_length}); raise it or leave it null"
        )
    return problems


def resolved(cfg: TrainSettings, key: str = "pretrain", **extra: Any) -> dict:
    """The settings as run, plus what was derived (world size, accumulation, precision ...)."""
    return {key: asdict(cfg), **extra}

"""The DeepSpeed config, built from the workflow config; and the choice of ZeRO stage.

Values that transformers fills in from ``TrainingArguments`` stay "auto" (batch sizes,
clipping, bucket sizes that derive from the hidden size) so the two can never disagree.
``stage3_gather_16bit_weights_on_model_save`` is always on: without it the final ZeRO-3
save is only a placeholder (ANCHORS, pitfalls).

Why a stage is chosen rather than always 3: on one GPU, out-of-the-box ZeRO-3 halves
throughput (15.7% against the plain Trainer's 29.4% MFU, ANCHORS), because it gathers
parameters on every use. A model whose states fit a device is faster without it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from cama.train.settings import TrainSettings, ZeroSettings

# Bytes per parameter of mixed-precision training with Adam: the 16-bit weights and gradients
# (2 + 2), the fp32 master copy and two moments (4 + 4 + 4). fp32 training: 4 + 4 + 8 = 16.
MODEL_STATE_BYTES = 16


def choose_stage(
    n_params: int, world_size: int, device_bytes: int | None, headroom: float = 0.5, trainable: int | None = None
) -> int:
    """The cheapest ZeRO stage whose model states use at most ``headroom`` of a device.

    The rest of the device is left for activations. 0 = plain data parallel. ``trainable``
    (default: all) parameters carry gradients and optimizer state; the others (a LoRA's
    frozen base) only their 16-bit weights.
    """
    if device_bytes is None:  # CPU: memory is not the limit that matters
        return 0 if world_size == 1 else 2
    trainable = n_params if trainable is None else trainable
    budget = headroom * device_bytes
    frozen = (n_params - trainable) * 2
    if frozen + trainable * MODEL_STATE_BYTES <= budget:
        return 0
    # stage 2: weights + gradients whole (2 + 2), the 12 bytes of optimizer state split
    if frozen + trainable * (4 + 12 / world_size) <= budget:
        return 2
    return 3


RESIDENT = 10**10  # "every parameter": larger than any model's parameter count per tensor
RESIDENT_BUCKET = 5 * 10**8


def resident_params_fit(n_params: int, world_size: int, device_bytes: int | None, headroom: float = 0.5) -> bool:
    """Under ZeRO-3, whether the 16-bit weights can stay whole on every device.

    Then ZeRO-3 partitions only gradients (2 bytes) and optimizer states (12 bytes), and no
    parameter is gathered per use, which is most of ZeRO-3's cost on a model that fits
    (ANCHORS: 27.9% against 15.7% MFU on one H200).
    """
    if device_bytes is None:
        return False  # CPU: keep DeepSpeed's defaults, which the tests exercise
    return n_params * (2 + (MODEL_STATE_BYTES - 2) / world_size) <= headroom * device_bytes


def fit_zero3(z: ZeroSettings, n_params: int, world_size: int, device_bytes: int | None) -> ZeroSettings:
    """ZeRO-3 settings chosen by what fits: the parameters kept resident when they fit and the
    user left the stage-3 thresholds unset; large buckets then, since nothing waits on them."""
    unset = (z.stage3_param_persistence_threshold, z.stage3_max_live_parameters, z.stage3_max_reuse_distance)
    if z.offload_param != "none" or any(v is not None for v in unset):
        return z
    if not resident_params_fit(n_params, world_size, device_bytes):
        return z
    return dataclasses.replace(
        z,
        stage3_param_persistence_threshold=RESIDENT,
        stage3_max_live_parameters=RESIDENT,
        stage3_max_reuse_distance=RESIDENT,
        reduce_bucket_size=z.reduce_bucket_size or RESIDENT_BUCKET,
        stage3_prefetch_bucket_size=z.stage3_prefetch_bucket_size or RESIDENT_BUCKET,
        overlap_comm=False if z.overlap_comm is None else z.overlap_comm,
    )


def resolve_precision(precision: str, cuda: bool, bf16_supported: bool) -> str:
    """auto -> bf16 on a GPU that has it, fp16 on older GPUs, fp32 on CPU."""
    if precision != "auto":
        return precision
    if not cuda:
        return "fp32"  # CPU bf16 autocast is slow and DeepSpeed's CPU path wants fp32 (ANCHORS)
    return "bf16" if bf16_supported else "fp16"


def resolve_optimizer(cfg: TrainSettings, cuda: bool) -> str:
    """Which AdamW: the Trainer's (torch) or one DeepSpeed builds."""
    if cfg.optimizer != "auto":
        return cfg.optimizer
    if cfg.zero.offload_optimizer != "none":
        return "deepspeed"  # offloaded state needs DeepSpeed's CPU Adam
    return "adamw_torch_fused" if cuda else "adamw_torch"


def _set(d: dict, key: str, value: Any) -> None:
    if value is not None:
        d[key] = value


def zero_section(z: ZeroSettings, stage: int, compiled: bool = False) -> dict:
    """``zero_optimization`` for ``stage`` (1-3); ``compiled``: the blocks are torch.compiled."""
    out: dict[str, Any] = {"stage": stage, "contiguous_gradients": z.contiguous_gradients}
    _set(out, "overlap_comm", z.overlap_comm)
    out["reduce_bucket_size"] = z.reduce_bucket_size if z.reduce_bucket_size is not None else "auto"
    if z.offload_optimizer != "none":
        out["offload_optimizer"] = {"device": z.offload_optimizer, "pin_memory": True}
    if stage < 3:
        _set(out, "allgather_bucket_size", z.allgather_bucket_size)
        return out
    if z.offload_param != "none":
        out["offload_param"] = {"device": z.offload_param, "pin_memory": True}
    out["stage3_prefetch_bucket_size"] = (
        z.stage3_prefetch_bucket_size if z.stage3_prefetch_bucket_size is not None else "auto"
    )
    out["stage3_param_persistence_threshold"] = (
        z.stage3_param_persistence_threshold if z.stage3_param_persistence_threshold is not None else "auto"
    )
    _set(out, "stage3_max_live_parameters", z.stage3_max_live_parameters)
    _set(out, "stage3_max_reuse_distance", z.stage3_max_reuse_distance)
    _set(out, "sub_group_size", z.sub_group_size)
    out["stage3_gather_16bit_weights_on_model_save"] = True
    if compiled:  # its autograd function makes dynamo recompile per weight (cama.train.compile)
        out["memory_efficient_linear"] = False
    return out


def ds_config(cfg: TrainSettings, *, stage: int, precision: str, optimizer: str, cuda: bool) -> dict | None:
    """The DeepSpeed config dict for ``TrainingArguments(deepspeed=...)``; None for stage 0."""
    if stage == 0:
        return None
    out: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": "auto",
        "gradient_accumulation_steps": "auto",
        "train_batch_size": "auto",
        "gradient_clipping": "auto",
        "zero_optimization": zero_section(cfg.zero, stage, compiled=cfg.torch_compile),
        "bf16": {"enabled": precision == "bf16"},
        # dynamic loss scale, as the seed's fp16 run
        "fp16": {"enabled": precision == "fp16", "loss_scale": 0, "initial_scale_power": 16},
        "steps_per_print": 10**9,  # the Trainer logs; DeepSpeed's own lines would duplicate them
        "wall_clock_breakdown": False,
    }
    if optimizer == "deepspeed":
        params: dict[str, Any] = {
            "lr": "auto",
            "betas": [cfg.adam_beta1, cfg.adam_beta2],
            "eps": cfg.adam_eps,
            "weight_decay": cfg.weight_decay,
        }
        if not cuda and cfg.zero.offload_optimizer == "none":
            params["torch_adam"] = True  # FusedAdam is CUDA-only; this ran on CPU here (ANCHORS)
        out["optimizer"] = {"type": "AdamW", "params": params}
    return out

"""The demo's model shape (``model.init``), as a settings dataclass, and its checks.

The training settings themselves (the ``pretrain`` section) are the core's
``cama.train.settings.TrainSettings``.
"""

from __future__ import annotations

from dataclasses import dataclass

from cama.config import from_section, section


@dataclass(frozen=True)
@section("model.init")
class ModelInit:
    """A LLaMA initialised from scratch (the demo, and the GPU benchmark), with a fixed seed."""

    layers: int
    """Transformer blocks (``num_hidden_layers``)."""
    hidden_size: int
    """Width of the residual stream."""
    heads: int
    """Attention heads; must divide ``hidden_size``."""
    kv_heads: int
    """Key/value heads (grouped-query attention); must divide ``heads``."""
    intermediate_size: int
    """Width of the SwiGLU MLP (LLaMA uses about 8/3 × hidden, rounded)."""
    max_position_embeddings: int
    """Longest sequence the model is built for (RoPE positions)."""
    rope_theta: float
    """RoPE base, LLaMA-1/2's value."""
    rms_norm_eps: float
    """RMSNorm epsilon."""
    initializer_range: float
    """Std of the normal init of every weight matrix."""
    seed: int
    """Seeds the initial weights: the same seed gives byte-identical weights."""


def model_init_from_dict(values: dict | None = None, key: str = "model.init") -> ModelInit:
    """``ModelInit`` from a (partial) ``model.init`` section: unknown keys are errors, the rest from the schema."""
    return from_section(ModelInit, values, key)


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

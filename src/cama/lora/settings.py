"""The ``lora`` section as dataclasses (defaults live in the schema only; see ``cama.config``).

``LoraSettings`` mirrors the section key for key. Its ``train`` sub-section has the core's
``TrainSettings`` keys with LoRA's defaults, less the ones that packing decides
(``train_settings`` fills those in: the padded length is the packed micro-batch, the attention
is ``lora.attention``, the adapter is one small file).
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from typing import Literal

from cama.config import build, deep_merge, from_section, schema_at, section


@dataclass(frozen=True)
@section("lora.merge")
class MergeSettings:
    dtype: Literal["bf16", "fp16", "fp32"]
    """Weights of the merged model, as saved (merged in fp32, rounded once)."""
    max_shard_size: str
    """Largest safetensors file of the merged model."""


@dataclass(frozen=True)
@section("lora")
class LoraSettings:
    r: int
    """LoRA rank."""
    alpha: float
    """LoRA alpha; the update is scaled by alpha / r."""
    dropout: float
    """Dropout on the adapters' input."""
    adapter_dtype: Literal["fp32", "base"]
    """The adapters' weights: fp32, or the frozen base's dtype."""
    target_modules: list[str]
    """Linear layers that get adapters; a name the model lacks is an error."""
    cutoff_len: int
    """Longest example in tokens."""
    overlong: Literal["drop", "truncate"]
    """What happens to a longer record (counted either way)."""
    epochs: float
    """Passes over the training examples (unless train.max_steps is set)."""
    pack_length: int
    """Tokens per packed row."""
    attention: Literal["auto", "flex", "varlen", "sdpa"]
    """How packed examples attend only to themselves (``cama.lora.model``)."""
    fused_loss: bool
    """The chunked answer-only loss of ``cama.lora.loss``."""
    loss_chunk: int
    """Answer positions per chunk of the fused loss."""
    eval_steps: int
    """Validation loss every this many steps."""
    merge: MergeSettings
    """``cama merge``'s output."""
    train: dict
    """The core's ``TrainSettings`` keys (built by ``train_settings``)."""

    def adapter_config(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "train"}


def from_dict(values: dict | None = None) -> LoraSettings:
    """``LoraSettings`` from a (partial) ``lora`` section, validated, defaults from the schema."""
    return from_section(LoraSettings, values, "lora")


def schema_defaults(path: str) -> dict:
    """A section's defaults, nested, read from the schema file alone (no validation)."""

    def fill(sub: dict) -> dict:
        out = {}
        for key, prop in sub.get("properties", {}).items():
            if "properties" in prop:
                out[key] = fill(prop)
            elif "default" in prop:
                out[key] = copy.deepcopy(prop["default"])
        return out

    return fill(schema_at(path))


def from_values(values: dict | None = None) -> LoraSettings:
    """``LoraSettings`` from a partial section over the schema's defaults, without validation:
    for the GPU benchmark (the GPU image may lack jsonschema). Unknown keys are still errors."""
    return build(LoraSettings, deep_merge(schema_defaults("lora"), values or {}), "lora")


def steps_for(rows_per_epoch: int, epochs: float, global_batch: int) -> int:
    """Optimizer steps that cover ``epochs`` passes (the last step completed from the next pass)."""
    return max(1, math.ceil(rows_per_epoch * epochs / global_batch))


def train_settings(lora: LoraSettings, *, max_steps: int, cuda: bool):
    """The core's ``TrainSettings`` for this run."""
    from cama.train.settings import TrainSettings

    # the section is complete once validated; over the schema's defaults it is complete anyway
    values = deep_merge(schema_defaults("lora.train"), {k: v for k, v in lora.train.items() if k != "max_steps"})
    values.pop("max_steps", None)
    values["torch_compile"] = bool(values["torch_compile"]) and cuda  # inductor on a GPU only
    return build(TrainSettings, values, "lora.train", max_steps=max_steps, seq_length=None,
                 attn_implementation="sdpa", sdpa_backend="auto", max_shard_size=lora.merge.max_shard_size)  # fmt: skip

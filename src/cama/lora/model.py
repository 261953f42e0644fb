"""The LoRA model: a frozen base, peft adapters, packed attention, and the answer-only loss.

``lora_model`` loads the base (bf16 on a GPU, fp32 on the CPU, frozen), checks that every
target module exists (peft itself only complains when *none* matches), and wraps it with
peft's ``LoraConfig``; the adapters stay fp32 (peft's default), and the Trainer's autocast
runs their matmuls in bf16 on a GPU (``adapter_dtype: base`` keeps them in the base's dtype
instead: peft's ``autocast_adapter_dtype=False``).

``use_packed_forward`` replaces the forward of the causal LM inside the peft model (this
instance only) by ``packed_forward``: the decoder on a packed row, then ``cama.lora.loss``.
The Trainer still sees the ``PeftModel``, so it saves and resumes the adapter alone, and the
saved adapter is a plain peft folder.

**Packed attention** (``attention``): every path gives each example attention to itself only.

| path | where | how |
|---|---|---|
| ``flex`` | GPU | FlexAttention with a document block mask (built once per micro-batch from ``doc_ids``; blocks wholly outside an example are skipped) |
| ``varlen`` | GPU | ``torch.nn.attention.varlen.varlen_attn`` (FlashAttention-2 over ``cu_seq_lens``), where this torch has it |
| ``sdpa`` | CPU (and a GPU fallback) | SDPA with a dense block-diagonal causal mask: exact, and cheap at the demo's lengths |

``auto`` is ``flex`` on a GPU and ``sdpa`` on the CPU. ``benchmarks/lora_throughput.py``
measures the GPU paths side by side.
"""

from __future__ import annotations

import inspect
import logging
import os

from cama.errors import ConfigError

log = logging.getLogger(__name__)

PACKED = "cama_packed"  # the attention implementation name registered with transformers
ATTENTION_PATHS = ("flex", "varlen", "sdpa")


def resolve_attention(name: str, cuda: bool) -> str:
    if name == "auto":
        return "flex" if cuda else "sdpa"
    if name in ("flex", "varlen") and not cuda:
        raise ConfigError(f"lora.attention: {name} needs a GPU; use sdpa (or auto) on the CPU")
    return name


# ----------------------------------------------------------------------------- attention


_varlen_kwargs: dict = {}
_compiled_flex = None


def prepare_varlen() -> None:
    """Fit the call to this torch's ``varlen_attn`` (its keywords changed between releases).

    Done once, eagerly, before any compiled block traces the call."""
    from torch.nn.attention.varlen import varlen_attn

    params = inspect.signature(varlen_attn).parameters
    _varlen_kwargs.clear()
    _varlen_kwargs.update({"is_causal": True} if "is_causal" in params else {"window_size": (-1, 0)})
    if "enable_gqa" in params:
        _varlen_kwargs["enable_gqa"] = True


def _varlen(query, key, value, cu, max_len: int, scale: float):
    """(T, H, D) in, (T, H, D) out, causal within each example of ``cu``."""
    from torch.nn.attention.varlen import varlen_attn

    return varlen_attn(query, key, value, cu, cu, max_len, max_len, scale=scale, **_varlen_kwargs)


def packed_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """The ``cama_packed`` attention: (B, H, T, D) in, (B, T, H, D) out, per-example causal."""
    import torch

    if "cama_block_mask" in kwargs:
        from torch.nn.attention.flex_attention import flex_attention

        global _compiled_flex
        flex = flex_attention
        if not torch.compiler.is_compiling():  # eager flex is a slow reference; compile it alone
            if _compiled_flex is None:
                _compiled_flex = torch.compile(flex_attention, dynamic=False)
            flex = _compiled_flex
        out = flex(query, key, value, block_mask=kwargs["cama_block_mask"], scale=scaling, enable_gqa=True)
        return out.transpose(1, 2), None
    if "cama_cu_seq_lens" in kwargs:
        q = query[0].transpose(0, 1)  # (T, H, D)
        k, v = key[0].transpose(0, 1), value[0].transpose(0, 1)
        if k.shape[1] != q.shape[1] and "enable_gqa" not in _varlen_kwargs:  # this torch's kernel wants equal heads
            rep = q.shape[1] // k.shape[1]
            k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
        out = _varlen(q.contiguous(), k.contiguous(), v.contiguous(), kwargs["cama_cu_seq_lens"],
                      kwargs["cama_max_len"], scaling)  # fmt: skip
        return out[None], None
    mask = kwargs.get("cama_dense_mask")
    out = torch.nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=mask, is_causal=mask is None, scale=scaling,
        enable_gqa=key.shape[1] != query.shape[1],
    )  # fmt: skip
    return out.transpose(1, 2), None


def register_attention() -> None:
    """Make ``cama_packed`` a transformers attention implementation (idempotent)."""
    from transformers import AttentionInterface

    AttentionInterface.register(PACKED, packed_attention)


def attention_inputs(path: str, doc_ids, cu_seq_lens, max_len: int) -> dict:
    """The keyword arguments that carry example boundaries to every layer's attention."""
    import torch

    if path == "flex":
        from torch.nn.attention.flex_attention import create_block_mask

        def same_example(b, h, q, kv):
            return (doc_ids[q] == doc_ids[kv]) & (q >= kv)

        n = doc_ids.shape[0]
        return {"cama_block_mask": create_block_mask(same_example, None, None, n, n, device=doc_ids.device,
                                                     _compile=doc_ids.is_cuda)}  # fmt: skip
    if path == "varlen":
        torch._dynamo.mark_dynamic(cu_seq_lens, 0)  # the number of examples varies; the shapes do not
        return {"cama_cu_seq_lens": cu_seq_lens, "cama_max_len": max_len}
    same = doc_ids[:, None] == doc_ids[None, :]
    causal = torch.ones_like(same).tril_()
    return {"cama_dense_mask": (same & causal)[None, None]}  # (1, 1, T, T)


# ----------------------------------------------------------------------------- the model


def linear_names(model) -> set[str]:
    """The last name component of every linear layer (what peft's target_modules match)."""
    import torch

    return {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}


def check_targets(model, targets: list[str], key: str = "lora.target_modules") -> None:
    names = linear_names(model)
    missing = [t for t in targets if t not in names]
    if missing:
        raise ConfigError(
            f"{key}: {', '.join(map(repr, missing))} not in {type(model).__name__} "
            f"(its linear layers: {', '.join(sorted(names))})"
        )


def lora_model(base_dir: str | os.PathLike, *, r: int, alpha: float, dropout: float, targets: list[str],
               dtype, attention: str = "sdpa", device=None, seed: int | None = None,
               adapter_dtype: str = "fp32"):  # fmt: skip
    """The frozen base with LoRA adapters on ``targets`` (a ``PeftModel``).

    ``seed`` seeds torch's generator right before peft draws the A matrices, so every run
    and every rank starts from the same adapters. ``adapter_dtype``: ``fp32``, or ``base``
    (the base's ``dtype``)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    register_attention()
    impl = PACKED if attention in ATTENTION_PATHS else attention
    base = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=dtype, attn_implementation=impl)
    if device is not None:
        base.to(device)
    base.config.use_cache = False
    check_targets(base, targets)
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(targets),
                        bias="none", task_type="CAUSAL_LM")  # fmt: skip
    if seed is not None:
        torch.manual_seed(seed)
    return get_peft_model(base, config, autocast_adapter_dtype=adapter_dtype == "fp32")


def causal_lm(peft_model):
    """The ``*ForCausalLM`` inside a ``PeftModel``."""
    return peft_model.base_model.model


def use_packed_forward(peft_model, attention: str, *, max_len: int, fused_loss: bool = True,
                       loss_chunk: int = 4096) -> None:  # fmt: skip
    """Route this model's forward through ``packed_forward`` (see the module docstring)."""
    import types

    if attention == "varlen":
        prepare_varlen()
    lm = causal_lm(peft_model)
    lm._cama = {"attention": attention, "max_len": max_len, "fused": fused_loss, "chunk": loss_chunk}
    lm.forward = types.MethodType(packed_forward, lm)


def packed_forward(self, input_ids=None, labels=None, position_ids=None, doc_ids=None, cu_seq_lens=None,
                   loss_positions=None, loss_targets=None, num_items_in_batch=None, **unused):  # fmt: skip
    """One packed row through the decoder, then the answer-only loss (``cama.lora.loss``)."""
    from transformers.modeling_outputs import CausalLMOutputWithPast

    from cama.lora.loss import lm_loss

    opts = self._cama
    extra = attention_inputs(opts["attention"], doc_ids, cu_seq_lens, opts["max_len"])
    hidden = self.model(input_ids=input_ids, position_ids=position_ids, **extra).last_hidden_state  # (1, T, d)
    loss = lm_loss(hidden, self.lm_head.weight, labels, num_items_in_batch, positions=loss_positions,
                   targets=loss_targets, chunk=opts["chunk"], fused=opts["fused"])  # fmt: skip
    return CausalLMOutputWithPast(loss=loss)

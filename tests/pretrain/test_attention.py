"""The causal fast path under torch.compile, and the SDPA kernel order."""

from __future__ import annotations

import pytest
import torch

from cama.pretrain.attention import CAUSAL_SDPA, causal_sdpa_mask, register_causal_sdpa


def _mask_kwargs(**extra):
    from transformers.masking_utils import causal_mask_function

    return {"batch_size": 2, "q_length": 8, "kv_length": 8, "mask_function": causal_mask_function,
            "attention_mask": None, "device": "cpu", **extra}  # fmt: skip


def test_no_mask_for_a_plain_causal_batch_even_while_compiling():
    assert causal_sdpa_mask(**_mask_kwargs()) is None

    @torch.compile(backend="eager", fullgraph=True)
    def traced(x):  # what transformers does inside a compiled model
        return x + (1 if causal_sdpa_mask(**_mask_kwargs()) is None else 0)

    assert traced(torch.zeros(1)).item() == 1


def test_padding_or_offsets_still_build_the_mask():
    padding = torch.ones(2, 8, dtype=torch.bool)
    padding[0, 6:] = False
    mask = causal_sdpa_mask(**_mask_kwargs(attention_mask=padding))
    assert mask is not None and mask.shape[-2:] == (8, 8)
    assert not mask[0, 0, 7, 6] and mask[1, 0, 7, 6] and not mask[1, 0, 0, 1]  # padding and causality
    assert causal_sdpa_mask(**_mask_kwargs(q_length=4, q_offset=4)) is not None  # continuing a cache


@pytest.mark.parametrize("padded", [False, True])
def test_model_with_causal_sdpa_matches_stock_sdpa(tiny_base, padded):
    from transformers import AutoModelForCausalLM

    name = register_causal_sdpa()
    assert name == CAUSAL_SDPA
    ours = AutoModelForCausalLM.from_pretrained(str(tiny_base), attn_implementation=name).eval()
    stock = AutoModelForCausalLM.from_pretrained(str(tiny_base), attn_implementation="eager").eval()
    ids = torch.randint(3, 200, (2, 24))
    mask = torch.ones_like(ids)
    if padded:
        mask[1, :5] = 0  # left padding: without the mask, later tokens would see it
    kwargs = {"input_ids": ids, "attention_mask": mask} if padded else {"input_ids": ids}
    with torch.no_grad():
        want = stock(**kwargs).logits
        got = torch.compile(ours, backend="aot_eager")(**kwargs).logits
    keep = mask.bool()
    torch.testing.assert_close(got[keep], want[keep], rtol=1e-4, atol=1e-4)

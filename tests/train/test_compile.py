"""Compiled transformer blocks: one graph for all, the causal fast path kept, same numbers."""

from __future__ import annotations

import torch

from cama.train.compile import block_classes, compile_blocks


def _spy_model(path):
    """The tiny model with SDPA attention that records whether each call got a mask."""
    from transformers import AttentionInterface, AutoModelForCausalLM
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    seen: list[bool] = []

    def spy(module, q, k, v, attention_mask, **kw):
        seen.append(attention_mask is None)
        return sdpa_attention_forward(module, q, k, v, attention_mask, **kw)

    AttentionInterface.register("sdpa_spy", spy)
    AttentionMaskInterface.register("sdpa_spy", sdpa_mask)
    model = AutoModelForCausalLM.from_pretrained(str(path), attn_implementation="sdpa_spy")
    model.config.use_cache = False  # as in training: no cache, so transformers checks for packing
    return model, seen


def test_blocks_share_one_graph_and_match_eager(tiny_base):
    from torch._dynamo.utils import counters
    from transformers import AutoModelForCausalLM

    ids = torch.randint(3, 200, (2, 32))
    eager = AutoModelForCausalLM.from_pretrained(str(tiny_base))
    want = eager(input_ids=ids, labels=ids)
    want.loss.backward()

    model = AutoModelForCausalLM.from_pretrained(str(tiny_base))
    model.config.use_cache = False
    assert block_classes(model) == {type(model.model.layers[0])}
    torch._dynamo.reset()
    counters.clear()
    assert compile_blocks(model, zero_stage=0, backend="aot_eager") == len(model.model.layers) == 2
    got = model(input_ids=ids, labels=ids)
    got.loss.backward()

    assert counters["stats"]["unique_graphs"] == 3  # the block (shared by all), the norm, the loss
    torch.testing.assert_close(got.logits, want.logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got.loss, want.loss, rtol=1e-5, atol=1e-5)
    g_want = eager.model.layers[1].mlp.up_proj.weight.grad
    g_got = model.model.layers[1].mlp.up_proj.weight.grad
    torch.testing.assert_close(g_got, g_want, rtol=1e-4, atol=1e-6)


def test_compiled_blocks_keep_the_causal_fast_path(tiny_base):
    """Built outside the compiled code, the mask of an unpadded batch stays None: SDPA's
    causal kernel, not a materialised full mask (what a whole-model compile gets)."""
    model, seen = _spy_model(tiny_base)
    compile_blocks(model, zero_stage=0, backend="aot_eager")
    ids = torch.randint(3, 200, (2, 16))
    model(input_ids=ids, labels=ids)
    assert seen and all(seen)


def test_padding_still_reaches_the_compiled_blocks(tiny_base):
    model, seen = _spy_model(tiny_base)
    compile_blocks(model, zero_stage=0, backend="aot_eager")
    ids = torch.randint(3, 200, (2, 16))
    mask = torch.ones_like(ids)
    mask[1, :4] = 0  # left padding: the mask matters to every later token
    model(input_ids=ids, attention_mask=mask)
    assert seen and not any(seen)


def test_sdpa_priority_puts_the_choice_first_and_keeps_fallbacks():
    from torch.nn.attention import SDPBackend

    from cama.train.attention import AUTO, sdpa_priority

    order = sdpa_priority("flash")
    assert order[0] == SDPBackend.FLASH_ATTENTION and len(order) == 4 and SDPBackend.MATH in order
    assert sdpa_priority("auto")[0] == sdpa_priority(AUTO)[0]
    assert sdpa_priority("efficient")[0] == SDPBackend.EFFICIENT_ATTENTION


def test_compiled_blocks_under_gradient_checkpointing_match_eager(tiny_base):
    from transformers import AutoModelForCausalLM

    ids = torch.randint(3, 200, (2, 32))
    grads = []
    for compiled in (False, True):
        model = AutoModelForCausalLM.from_pretrained(str(tiny_base))
        model.config.use_cache = False
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        model.train()
        if compiled:
            compile_blocks(model, zero_stage=0, backend="aot_eager")
        model(input_ids=ids, labels=ids).loss.backward()
        grads.append(model.model.layers[0].self_attn.q_proj.weight.grad)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-6)

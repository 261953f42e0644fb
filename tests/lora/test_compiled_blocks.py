"""Compiled blocks (the GPU path) compile once: new example boundaries in every row do not recompile.

The blocks are compiled as the stage compiles them (``cama.train.compile.compile_blocks``), with
the ``aot_eager`` backend: dynamo's guards, and so its recompiles, are the GPU's, without
inductor's C++ build. What differs from row to row is only values (token ids, positions, the
example boundaries), at one padded length.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoConfig

from cama.lora.data import Example
from cama.lora.model import lora_model, use_packed_forward
from cama.lora.packing import PackedCollator, row_arrays
from cama.train.compile import compile_blocks

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
LENGTH = 256  # the padded row (flex: a multiple of its 128-token blocks)


def _rows(vocab: int, seed: int, n: int, pad_to: int = LENGTH) -> list[dict]:
    """``n`` batches of one packed row each, every row with its own example lengths."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        lens: list[int] = []
        while sum(lens) < pad_to - 48:
            lens.append(int(rng.integers(6, 48)))
        ex = [Example(f"e{i}", rng.integers(3, vocab, k).astype(np.int32), np.arange(k) >= k // 2) for i, k in enumerate(lens)]
        batch = PackedCollator(pad_id=0, pad_to=pad_to)([row_arrays(ex, range(len(ex)))])
        batch.pop("num_tokens")
        out.append(batch)
    assert len({len(b["loss_targets"]) for b in out}) > 1  # the rows really differ
    return out


@pytest.mark.parametrize("attention", ["sdpa", "flex"])
def test_new_example_boundaries_do_not_recompile(tiny_base, attention, monkeypatch):
    from torch._dynamo.utils import counters

    if attention == "flex":
        # Flex refuses a CPU backward because inductor has no CPU backward kernel for it; under
        # aot_eager its backward is the reference implementation, which runs anywhere.
        import torch.nn.attention.flex_attention as fa

        monkeypatch.setattr(fa, "_validate_device", lambda *a, **k: None)
    torch._dynamo.reset()
    counters.clear()
    vocab = AutoConfig.from_pretrained(tiny_base).vocab_size
    net = lora_model(tiny_base, r=4, alpha=8, dropout=0.05, targets=TARGETS, dtype=torch.float32, seed=0)
    use_packed_forward(net, attention, max_len=LENGTH)
    assert compile_blocks(net, zero_stage=0, backend="aot_eager") == 2
    net.train()
    first, *rest = _rows(vocab, seed=0, n=6)

    def train_step(batch):
        loss = net(**batch).loss
        loss.backward()
        assert torch.isfinite(loss)

    def validate(batch):  # as the Trainer's evaluation: eval mode, no gradients
        net.eval()
        with torch.no_grad():
            net(**batch)
        net.train()

    train_step(first)  # compiles: the first block (its input needs no gradient) and the others
    validate(first)  # and the no-gradient graphs
    # On the flex path the second training step recompiles once (torch 2.13, transformers 5.25):
    # a guard on the ``kernels`` package's context variable (transformers' kernel-hub wrapper
    # around attention) fails once; from then on nothing changes.
    train_step(rest.pop(0))
    graphs = counters["stats"]["unique_graphs"]
    assert graphs > 0
    for batch in rest:  # new boundaries, train and validation interleaved: nothing new to compile
        train_step(batch)
        validate(batch)
    assert counters["stats"]["unique_graphs"] == graphs
    assert not counters["graph_break"], dict(counters["graph_break"])
    # and the count can fail: a row of another length is another graph
    train_step(_rows(vocab, seed=1, n=2, pad_to=LENGTH + 128)[0])
    assert counters["stats"]["unique_graphs"] > graphs
    torch._dynamo.reset()

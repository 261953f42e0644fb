"""Padding-free packing: rows, their collator, and that a packed row trains exactly like its examples alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _records import cmrc, humaneval

from cama.lora.data import Example, load_tokenizer, tokenize
from cama.lora.loss import lm_loss
from cama.lora.model import causal_lm, lora_model, use_packed_forward
from cama.lora.packing import IGNORE, PackedCollator, best_fit, plan_rows, row_arrays

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def test_best_fit_places_every_item_once_within_capacity():
    rng = np.random.default_rng(0)
    for _ in range(20):
        lengths = rng.integers(1, 50, size=int(rng.integers(1, 200))).tolist()
        bins = best_fit(lengths, 50)
        assert sorted(i for b in bins for i in b) == list(range(len(lengths)))
        assert all(sum(lengths[i] for i in b) <= 50 for b in bins)
        # best fit never opens a bin that an earlier one could have taken: at most one bin is half empty
        assert sum(sum(lengths[i] for i in b) <= 25 for b in bins) <= 1
    with pytest.raises(ValueError, match="does not fit"):
        best_fit([51], 50)


def test_plan_rows_is_seeded_and_covers_every_example_each_epoch():
    lengths = np.random.default_rng(1).integers(10, 200, size=300)
    rows = plan_rows(lengths, 512, epochs=2, seed=3, window=64)
    assert rows == plan_rows(lengths, 512, epochs=2, seed=3, window=64)
    assert rows != plan_rows(lengths, 512, epochs=2, seed=4, window=64)
    flat = [i for r in rows for i in r]
    assert sorted(flat) == sorted(list(range(300)) * 2)
    first = sum(len(r) for r in rows[: len(plan_rows(lengths, 512, epochs=1, seed=3, window=64))])
    assert sorted(flat[:first]) == list(range(300))  # epoch 1 entirely before epoch 2
    assert sum(lengths) / (len(rows) / 2 * 512) > 0.9  # rows come out nearly full


def _examples(tok, n=5):
    return [Example(r["id"], *tokenize(tok, r["messages"])) for r in (cmrc(n - 2) + humaneval(2))]


def test_collator_restarts_positions_and_masks_boundaries(tiny_base):
    tok = load_tokenizer(tiny_base)
    ex = _examples(tok, 4)
    lens = [len(e) for e in ex]
    b = PackedCollator(pad_id=0, pad_to=sum(lens) + 7)([row_arrays(ex, [0, 1]), row_arrays(ex, [2, 3])])
    starts = np.concatenate([[0], np.cumsum(lens)])
    assert b["input_ids"].shape == (1, sum(lens) + 7) and int(b["num_tokens"]) == sum(lens)
    assert b["cu_seq_lens"].tolist() == [*starts.tolist(), sum(lens) + 7]
    pos = b["position_ids"][0].numpy()
    for i, e in enumerate(ex):
        seg = slice(starts[i], starts[i + 1])
        assert (pos[seg] == np.arange(len(e))).all()
        labels = b["labels"][0, seg].numpy()
        assert labels[0] == IGNORE and ((labels != IGNORE) == e.mask).all()
        assert (b["doc_ids"][seg] == i).all()
    assert (b["labels"][0, sum(lens) :] == IGNORE).all() and (b["position_ids"][0, sum(lens) :].numpy() == np.arange(7)).all()
    # the loss positions found on the CPU are those of the shifted labels
    target = torch.cat([b["labels"][0, 1:], torch.tensor([IGNORE])])
    assert b["loss_positions"].tolist() == torch.nonzero(target != IGNORE).squeeze(1).tolist()
    assert (b["loss_targets"] == target[b["loss_positions"]]).all()


@pytest.fixture(scope="module")
def model(tiny_base):
    torch.manual_seed(0)
    m = lora_model(tiny_base, r=4, alpha=8, dropout=0.0, targets=TARGETS, dtype=torch.float32)
    for name, p in m.named_parameters():
        if "lora_B" in name:  # B starts at zero; a random one makes every adapter gradient non-trivial
            torch.nn.init.normal_(p, std=0.05)
    return m


def _grads(m) -> dict:
    out = {n: p.grad.clone() for n, p in m.named_parameters() if p.requires_grad}
    m.zero_grad()
    return out


def test_a_packed_row_gives_each_examples_loss_and_gradients(tiny_base, model):
    """The issue's test: one packed row against the examples one at a time (CPU path: sdpa)."""
    tok = load_tokenizer(tiny_base)
    ex = _examples(tok, 5)
    col = PackedCollator(pad_id=0, pad_to=sum(len(e) for e in ex) + 5)
    use_packed_forward(model, "sdpa", max_len=512)
    packed = col([row_arrays(ex, range(5))])
    n_answers = len(packed["loss_targets"])
    model.zero_grad()
    loss = model(**packed).loss
    loss.backward()
    g_packed = _grads(model)
    total, per_example = 0.0, []
    for i in range(len(ex)):  # alone: each its own row, the same normaliser
        alone = col([row_arrays(ex, [i])])
        one = model(**alone, num_items_in_batch=torch.tensor(n_answers)).loss
        one.backward()
        per_example.append(one.item() * n_answers / len(alone["loss_targets"]))
        total += one.item()
    g_alone = _grads(model)
    assert loss.item() == pytest.approx(total, rel=1e-5)
    assert len(set(np.round(per_example, 3))) == len(ex)  # the examples really differ
    for name, g in g_packed.items():
        assert g.abs().max() > 0, name
        torch.testing.assert_close(g, g_alone[name], rtol=1e-4, atol=1e-7)
    # and the test can fail: the same row under plain causal attention (no example boundaries)
    with torch.no_grad():
        leaky = model(**{**packed, "doc_ids": torch.zeros_like(packed["doc_ids"])}).loss
    assert abs(leaky.item() - loss.item()) > 1e-4  # 50× the tolerance the packed row meets


def test_the_fused_loss_is_the_models_own_loss(tiny_base, model):
    tok = load_tokenizer(tiny_base)
    e = _examples(tok, 3)[2]
    ids = torch.as_tensor(e.input_ids, dtype=torch.long)[None]
    labels = torch.where(torch.as_tensor(e.mask)[None], ids, torch.tensor(IGNORE))
    lm = causal_lm(model)
    hidden = lm.model(input_ids=ids).last_hidden_state.detach().requires_grad_()
    ref = torch.nn.functional.cross_entropy((hidden @ lm.lm_head.weight.t())[0, :-1], labels[0, 1:])
    ref.backward()
    g_ref, hidden.grad = hidden.grad.clone(), None
    fused = lm_loss(hidden, lm.lm_head.weight, labels, chunk=7)  # several chunks, a ragged last one
    fused.backward()
    assert fused.item() == pytest.approx(ref.item(), rel=1e-5)
    torch.testing.assert_close(hidden.grad, g_ref, rtol=1e-4, atol=1e-7)
    assert lm_loss(hidden, lm.lm_head.weight, labels, fused=False).item() == pytest.approx(ref.item(), rel=1e-5)


@pytest.mark.slow
def test_flex_block_mask_confines_attention_like_sdpa(tiny_base, model):
    """The GPU path's document block mask, checked on the CPU (forward only: flex has no CPU backward)."""
    tok = load_tokenizer(tiny_base)
    ex = _examples(tok, 4)
    packed = PackedCollator(pad_id=0, pad_to=128 * -(-sum(len(e) for e in ex) // 128))([row_arrays(ex, range(4))])
    with torch.no_grad():
        use_packed_forward(model, "sdpa", max_len=512)
        want = model(**packed).loss.item()
        use_packed_forward(model, "flex", max_len=512)
        got = model(**packed).loss.item()
    use_packed_forward(model, "sdpa", max_len=512)
    assert got == pytest.approx(want, rel=1e-5)

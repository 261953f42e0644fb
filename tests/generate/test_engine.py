"""The generation engine against HF ``generate`` on a real tiny LLaMA (2 layers, the demo's tokenizer).

Greedy outputs must be token-identical to ``model.generate`` one prompt at a time, batched or
not; EOS, stop strings and the length limit end a generation with the right reason and count;
streamed pieces add up to the text; the online interface gives what the offline one gives.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
import torch

from cama.errors import CamaError
from cama.generate import PRESETS, Settings
from cama.generate.engine import Engine, QueueFull

PROMPTS = [
    "你好，世界",
    "The quick brown fox jumps over the lazy dog because",
    [{"role": "user", "content": "Translate into Chinese: good morning"}],
    [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "子曰：学而时习之"}],
    "def add(a, b):\n    return",
    "x",
]


@pytest.fixture(scope="module")
def model_and_tok(tiny_base):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 2-layer model: threads only contend on a shared machine
    model = AutoModelForCausalLM.from_pretrained(str(tiny_base), dtype=torch.float32).eval()
    yield model, AutoTokenizer.from_pretrained(str(tiny_base))
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def engine(model_and_tok):
    model, tok = model_and_tok
    return Engine(model, tok, max_batch=4)


def hf_generate(engine, prompt, **kw):
    ids = torch.tensor([engine.encode(prompt)])
    out = engine.model.generate(ids, attention_mask=torch.ones_like(ids), pad_token_id=0,
                                eos_token_id=sorted(engine.eos_ids), **kw)  # fmt: skip
    gen = out[0, ids.shape[1] :].tolist()
    return [t for t in gen if t not in engine.eos_ids]


@pytest.mark.parametrize("penalty", [1.0, 1.3])
def test_greedy_is_token_identical_to_hf_generate(engine, penalty):
    # more prompts than slots (4): slots are freed and refilled while others decode
    prompts = PROMPTS + ["第二个" * 7, "one more prompt"]
    outs = engine.generate(prompts, Settings(max_new_tokens=24, repetition_penalty=penalty, trim_repetition=False))
    for p, o in zip(prompts, outs, strict=True):
        ref = hf_generate(engine, p, max_new_tokens=24, do_sample=False, repetition_penalty=penalty)
        assert o.token_ids == ref
        assert o.finish_reason == "length" and o.completion_tokens == 24 == len(o.token_ids)
        assert o.prompt_tokens == len(engine.encode(p))
        assert o.text == engine.tokenizer.decode(ref, skip_special_tokens=True)


def test_batched_equals_one_at_a_time_and_bucketed_shapes(model_and_tok, engine):
    model, tok = model_and_tok
    s = Settings(max_new_tokens=16)
    batched = engine.generate(PROMPTS, s)
    single = Engine(model, tok, max_batch=1)
    bucketed = Engine(model, tok, max_batch=8, bucketed=True)  # the shapes CUDA graphs use
    one = [single.generate([p], s)[0] for p in PROMPTS]
    padded = bucketed.generate(PROMPTS, s)
    assert [o.token_ids for o in batched] == [o.token_ids for o in one] == [o.token_ids for o in padded]


def test_eos_ends_a_generation_and_is_counted(model_and_tok):
    model, tok = model_and_tok
    free = Engine(model, tok).generate([PROMPTS[1]], Settings(max_new_tokens=20, trim_repetition=False))[0]
    k = 5
    eos = free.token_ids[k]
    k = free.token_ids.index(eos)  # its first occurrence
    eng = Engine(model, tok)
    eng.eos_ids = eng.eos_ids | {eos}
    out = eng.generate([PROMPTS[1]], Settings(max_new_tokens=20))[0]
    assert out.finish_reason == "eos"
    assert out.token_ids == free.token_ids[:k] and out.completion_tokens == k + 1
    assert eng.stats["finish_eos"] == 1


def test_length_cut_is_counted(engine):
    before = engine.stats["finish_length"]
    outs = engine.generate(PROMPTS[:3], Settings(max_new_tokens=3, trim_repetition=False))
    assert [o.finish_reason for o in outs] == ["length"] * 3 and all(o.completion_tokens == 3 for o in outs)
    assert engine.stats["finish_length"] - before == 3


def test_stop_strings_cut_before_the_stop(engine):
    free = engine.generate(PROMPTS, Settings(max_new_tokens=30, trim_repetition=False))
    stops, expect = [], []
    for o in free:
        text = o.text
        stop = text[len(text) // 2 : len(text) // 2 + 2]
        stops.append(stop)
        expect.append(text[: text.find(stop)])
    for p, stop, want in zip(PROMPTS, stops, expect, strict=True):
        out = engine.generate([p], Settings(max_new_tokens=30, stop=(stop, "never appears")))[0]
        assert out.finish_reason == "stop" and out.text == want


def test_streamed_pieces_add_up_to_the_text(engine):
    pieces: dict[int, list[str]] = {}
    s = Settings(max_new_tokens=40, trim_repetition=False)
    outs = engine.generate(PROMPTS, s, on_token=lambda i, piece: pieces.setdefault(i, []).append(piece))
    for i, o in enumerate(outs):
        assert "".join(pieces[i]) == o.text
        assert len(pieces[i]) > 1  # streamed, not handed over at the end
    # with a stop string the held-back tail never leaks the stop
    stop = outs[1].text[10:13]
    got: list[str] = []
    out = engine.generate([PROMPTS[1]], Settings(max_new_tokens=40, stop=(stop,)), on_token=lambda i, p: got.append(p))[0]
    assert "".join(got) == out.text and stop not in "".join(got)


def test_sampling_is_seeded_per_request_whatever_the_batch(engine):
    s = Settings(max_new_tokens=12, temperature=0.8, top_p=0.9, top_k=50, seed=7)
    alone = engine.generate([PROMPTS[0]], s)[0]
    mixed = engine.generate([PROMPTS[2], PROMPTS[0], PROMPTS[1]], [PRESETS["greedy"], s, Settings(temperature=1.0)])
    assert mixed[1].token_ids == alone.token_ids
    other = engine.generate([PROMPTS[0]] * 3, [Settings(max_new_tokens=12, temperature=1.0, seed=i) for i in range(3)])
    assert len({tuple(o.token_ids) for o in other}) > 1
    greedy = engine.generate([PROMPTS[0]], Settings(max_new_tokens=12))[0]
    top1 = engine.generate([PROMPTS[0]], Settings(max_new_tokens=12, temperature=1.0, top_k=1, seed=3))[0]
    assert top1.token_ids == greedy.token_ids


def test_beam_search_goes_through_hf_generate(engine):
    s = Settings(num_beams=3, repetition_penalty=1.6, max_new_tokens=10)
    outs = engine.generate(PROMPTS[:3], s)
    for p, o in zip(PROMPTS[:3], outs, strict=True):
        assert o.token_ids == hf_generate(engine, p, max_new_tokens=10, num_beams=3, repetition_penalty=1.6, do_sample=False)


def test_online_requests_from_threads_join_the_batch(model_and_tok):
    model, tok = model_and_tok
    s = Settings(max_new_tokens=20, trim_repetition=False)  # streamed pieces = the untrimmed text
    offline = Engine(model, tok).generate(PROMPTS, s)
    eng = Engine(model, tok, max_batch=3, max_queue=64)
    results: dict[int, object] = {}
    with eng:
        def client(i):
            req = eng.submit(PROMPTS[i], s)
            assert "".join(req) == req.result().text
            results[i] = req.result()

        threads = [threading.Thread(target=client, args=(i,)) for i in range(len(PROMPTS))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        async def stream():
            req = eng.submit(PROMPTS[0], s)
            return "".join([p async for p in req.astream()]), req.result()

        text, gen = asyncio.run(stream())
        assert text == gen.text == offline[0].text
        assert [o.token_ids for o in eng.generate(PROMPTS, s)] == [o.token_ids for o in offline]
    assert [results[i].token_ids for i in range(len(PROMPTS))] == [o.token_ids for o in offline]


def test_bounded_queue_refuses_when_full(model_and_tok):
    model, tok = model_and_tok
    eng = Engine(model, tok, max_batch=1, max_queue=2)
    eng._prepare(eng.max_length, 1)
    eng._thread = object()  # queue without a scheduler running: nothing drains it
    try:
        eng.submit("a", Settings(max_new_tokens=2))
        eng.submit("b", Settings(max_new_tokens=2))
        with pytest.raises(QueueFull):
            eng.submit("c", Settings(max_new_tokens=2))
    finally:
        eng._thread = None


def test_a_prompt_longer_than_the_context_is_an_error_not_a_crash(model_and_tok):
    model, tok = model_and_tok
    eng = Engine(model, tok, max_length=64)
    long, short = "长" * 200, "short"
    outs = eng.generate([long, short], Settings(max_new_tokens=100))
    assert outs[0].finish_reason == "error" and "context" in outs[0].error
    assert outs[1].finish_reason == "length" and len(eng.encode(short)) + outs[1].completion_tokens == 64


def test_load_names_a_folder_that_is_not_a_model(tmp_path, tiny_base):
    with pytest.raises(CamaError, match=str(tmp_path)):
        Engine.load(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CamaError, match="does not load"):
        Engine.load(tmp_path)
    with pytest.raises(CamaError, match="adapter"):
        Engine.load(tiny_base, adapter=tmp_path)

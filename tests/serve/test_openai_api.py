"""``cama serve``'s API over real HTTP on loopback, driven by the official ``openai`` client."""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

httpx = pytest.importorskip("httpx", reason="the [serve] extra is not installed")
openai = pytest.importorskip("openai", reason="the [serve] extra is not installed")
pytest.importorskip("fastapi", reason="the [serve] extra is not installed")

from cama.serve.cli import serve_in_thread  # noqa: E402
from cama.serve.models import Settings, load_models  # noqa: E402
from cama.serve.openai_api import create_app  # noqa: E402

GREEDY = dict(temperature=0)
HELLO = [{"role": "system", "content": "你是一个助手。"}, {"role": "user", "content": "介绍一下北京。"}]


@pytest.fixture(scope="module")
def models(tiny_chat, tiny_adapter):
    served = load_models(tiny_chat, name="tiny", adapters=[f"tiny-lora={tiny_adapter}"], max_batch=16, max_queue=64)
    for s in served.values():
        s.engine.start()
    yield served
    for s in served.values():
        s.engine.stop()


@pytest.fixture(scope="module")
def server(models):
    with serve_in_thread(create_app(models, max_tokens=64)) as url:
        yield url, models["tiny"].engine


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server[0], api_key="unused", max_retries=0, timeout=60)


def offline(models, name, prompt, max_new_tokens):
    """The same prompt through the engine directly: what the server must return."""
    return models[name].engine.generate([prompt], Settings(max_new_tokens=max_new_tokens))[0]


def test_models_lists_the_model_and_its_adapter(client, tiny_chat):
    listed = {m.id: m for m in client.models.list().data}
    assert set(listed) == {"tiny", "tiny-lora"}
    assert listed["tiny-lora"].parent == tiny_chat.name and listed["tiny"].parent is None
    assert listed["tiny"].object == "model" and listed["tiny"].owned_by == "cama"


def test_chat_completion_is_the_engines_answer_with_usage(client, models):
    r = client.chat.completions.create(model="tiny", messages=HELLO, max_tokens=12, **GREEDY)
    want = offline(models, "tiny", HELLO, 12)
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-")
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content == want.text
    assert r.choices[0].finish_reason == {"eos": "stop", "length": "length", "stop": "stop"}[want.finish_reason]
    # prompt tokens are the chat template's rendering, as the tokenizer counts it
    prompt_ids = models["tiny"].engine.tokenizer.apply_chat_template(HELLO, add_generation_prompt=True, tokenize=True)
    prompt_ids = prompt_ids["input_ids"] if hasattr(prompt_ids, "keys") else prompt_ids
    assert r.usage.prompt_tokens == len(prompt_ids) == want.prompt_tokens
    assert r.usage.completion_tokens == want.completion_tokens and 1 <= want.completion_tokens <= 12
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_adapter_is_chosen_by_model_name(client, models):
    base = client.chat.completions.create(model="tiny", messages=HELLO, max_tokens=16, **GREEDY)
    lora = client.chat.completions.create(model="tiny-lora", messages=HELLO, max_tokens=16, **GREEDY)
    assert lora.choices[0].message.content == offline(models, "tiny-lora", HELLO, 16).text
    assert lora.choices[0].message.content != base.choices[0].message.content  # the adapter changes the model
    assert lora.model == "tiny-lora"


def test_completion_takes_the_raw_prompt_and_a_list(client, models):
    r = client.completions.create(model="tiny", prompt="天下大事，", max_tokens=10, **GREEDY)
    assert r.object == "text_completion"
    assert r.choices[0].text == offline(models, "tiny", "天下大事，", 10).text
    two = client.completions.create(model="tiny", prompt=["天下大事，", "The quick brown"], max_tokens=6, **GREEDY)
    assert [c.index for c in two.choices] == [0, 1]
    assert two.choices[1].text == offline(models, "tiny", "The quick brown", 6).text
    assert two.usage.prompt_tokens == sum(offline(models, "tiny", p, 1).prompt_tokens for p in ["天下大事，", "The quick brown"])


def test_streaming_chat_gives_the_same_text_then_done(client, server):
    whole = client.chat.completions.create(model="tiny", messages=HELLO, max_tokens=20, **GREEDY)
    chunks = list(client.chat.completions.create(model="tiny", messages=HELLO, max_tokens=20, stream=True,
                                                 stream_options={"include_usage": True}, **GREEDY))  # fmt: skip
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 1  # streamed, not one piece
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [whole.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == whole.usage.total_tokens
    # on the wire: server-sent events ending in [DONE]
    raw = httpx.post(f"{server[0]}/completions", json={"model": "tiny", "prompt": "春", "max_tokens": 4, "stream": True})
    assert raw.headers["content-type"].startswith("text/event-stream")
    events = [line for line in raw.text.split("\n\n") if line]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"


def test_errors_have_openais_shape_and_status(client, server, models):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-4o", messages=HELLO)
    assert e.value.code == "model_not_found" and "tiny" in e.value.message
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="tiny", messages=HELLO, temperature=5)
    assert e.value.status_code == 400 and "temperature" in e.value.message
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="tiny", messages=[])
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="tiny", messages=HELLO, max_tokens=10_000)
    assert e.value.param == "max_tokens"
    with pytest.raises(openai.BadRequestError) as e:  # over-long: the tiny model attends over 256 tokens
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "北京 " * 400}], max_tokens=8)
    assert e.value.code == "context_length_exceeded" and "256" in e.value.message
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="tiny", prompt="x", logprobs=3)
    url = server[0]
    garbage = [
        httpx.post(f"{url}/chat/completions", content=b"{not json", headers={"content-type": "application/json"}),
        httpx.post(f"{url}/chat/completions", content=b"\xff\xfe\x00", headers={"content-type": "application/json"}),
        httpx.post(f"{url}/chat/completions", json={"model": "tiny", "messages": [{"role": "robot", "content": "hi"}]}),
        httpx.post(f"{url}/chat/completions", json={"model": "tiny", "messages": HELLO, "n": 10_000}),
        httpx.post(f"{url}/completions", json={"model": "tiny", "prompt": [1, 2, 3]}),
        httpx.post(f"{url}/completions", json=[1, 2]),
    ]
    for r in garbage:
        assert r.status_code == 400, r.text
        assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    missing = httpx.get(f"{url}/nothing-here")
    assert missing.status_code == 404 and "error" in missing.json()
    # and the server is still up
    assert client.chat.completions.create(model="tiny", messages=HELLO, max_tokens=2).choices[0].message is not None


def test_bearer_key_from_the_environment(models, monkeypatch, server):
    monkeypatch.setenv("CAMA_TEST_KEY", "s3cret")
    with serve_in_thread(create_app(models, api_key_env="CAMA_TEST_KEY")) as url:
        with pytest.raises(openai.AuthenticationError) as e:
            openai.OpenAI(base_url=url, api_key="wrong", max_retries=0).models.list()
        assert e.value.status_code == 401 and e.value.code == "invalid_api_key"
        assert httpx.get(f"{url}/models").status_code == 401  # no header at all
        ok = openai.OpenAI(base_url=url, api_key="s3cret", max_retries=0)
        assert [m.id for m in ok.models.list().data] == ["tiny", "tiny-lora"]
        assert ok.completions.create(model="tiny", prompt="春", max_tokens=2).usage.completion_tokens >= 1


def test_sixteen_concurrent_clients_are_batched(client, server):
    engine = server[1]
    steps, rows = engine.stats["decode_steps"], engine.stats["decode_rows"]
    prompts = [f"第{i}个问题：什么是知识图谱？" for i in range(16)]

    def ask(prompt):
        c = openai.OpenAI(base_url=server[0], api_key="unused", max_retries=0, timeout=120)
        return c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": prompt}],
                                         max_tokens=24, **GREEDY)  # fmt: skip

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(ask, prompts))
    assert len(answers) == 16 and all(a.choices[0].finish_reason in ("stop", "length") for a in answers)
    assert all(1 <= a.usage.completion_tokens <= 24 for a in answers)
    # concurrent requests were decoded together: rows per decoding step well above one
    ratio = (engine.stats["decode_rows"] - rows) / (engine.stats["decode_steps"] - steps)
    assert ratio > 4


def test_full_queue_answers_429_and_keeps_serving(tiny_chat):
    """One place in the batch and one in the queue: of 8 requests sent at once, at most two are
    taken while the first decodes; the others are told to come back (429), and later ones are served."""
    single = load_models(tiny_chat, name="tiny", max_batch=1, max_queue=1)
    with single["tiny"].engine.start(), serve_in_thread(create_app(single, max_tokens=200)) as url:
        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0, timeout=120)
        body = {"model": "tiny", "prompt": "春天", "max_tokens": 200, "temperature": 0}

        def send(_):
            try:
                return client.completions.create(**body)
            except openai.RateLimitError as e:
                return e

        with ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(send, range(8)))
        busy = [r for r in replies if isinstance(r, openai.RateLimitError)]
        assert 1 <= len(busy) <= 6, replies
        assert busy[0].status_code == 429 and busy[0].response.headers["retry-after"] == "1"
        assert busy[0].code == "rate_limit_exceeded"
        assert client.completions.create(**{**body, "max_tokens": 4}).usage.completion_tokens >= 1


def test_models_stays_responsive_while_generating(client, server):
    """A property, not a benchmark: the event loop never waits for the engine."""
    engine = server[1]
    with ThreadPoolExecutor(4) as pool:
        tokens = engine.stats["tokens"]
        long = [pool.submit(client.completions.create, model="tiny", prompt=f"{i}", max_tokens=64, **GREEDY)
                for i in range(4)]  # fmt: skip
        while engine.stats["tokens"] == tokens:  # generation has begun
            time.sleep(0.002)
        latencies = []
        with httpx.Client() as http:
            while not all(f.done() for f in long) and len(latencies) < 20:
                t = time.perf_counter()
                assert http.get(f"{server[0]}/models").status_code == 200
                latencies.append(time.perf_counter() - t)
        assert all(f.result().usage.completion_tokens >= 1 for f in long)
    assert len(latencies) >= 3, "generation ended before /v1/models could be probed"
    assert statistics.median(latencies) < 0.1 and max(latencies) < 1.0, latencies

"""Translation through the real openai client against a loopback /v1/chat/completions, faults included.

The server (openai_server.py) speaks OpenAI's protocol and answers in the asked language;
every fault the issue names is injected: 429 with Retry-After, 500, a stalled response,
malformed JSON, an answer in the wrong language, a refusal; and the stage is killed mid-run
and rerun.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, convert, source_spec
from openai_server import REFUSAL, Served, serve

from cama.instruct.ie import parse
from cama.instruct.records import iter_jsonl, write_jsonl
from cama.instruct.translate.cache import Cache, request_key
from cama.instruct.translate.stage import translate_source
from cama.instruct.translate.validate import Checks, check_answer, mask, unmask

KEY_ENV = "CAMA_TEST_TRANSLATE_KEY"


@pytest.fixture(scope="module")
def records(tmp_path_factory, demo_config) -> dict[str, Path]:
    """Real records: 8 self-instruct tasks, 4 HumanEval tasks (code to keep), 3 WNUT sentences."""
    tmp = tmp_path_factory.mktemp("records")
    out = {}
    for name, n in [("self_instruct_en", 8), ("humaneval_en", 4), ("wnut17_en", 3)]:
        out[name] = convert(tmp, name, source_spec(demo_config, name, max_records=n), demo_config)["paths"]["records"]
    return out


def settings(config: dict, served: Served, **changes) -> dict:
    s = copy.deepcopy(config["instruct"]["translate"])
    s.update(provider="openai", base_url=served.base_url, model="loopback", api_key_env=KEY_ENV,
             concurrency=4, timeout_seconds=1.0, max_retries=3, backoff_seconds=0.05)
    for k, v in changes.items():
        s[k] = {**s[k], **v} if isinstance(s.get(k), dict) else v
    return s


def run(tmp: Path, records: Path, s: dict, mode: str = "both", name: str = "src") -> dict:
    out = {k: tmp / f"{name}.{k}" for k in ("jsonl", "rejected.jsonl", "stats.json")}
    stats = translate_source(name, {"translate": {"to": "zh", "mode": mode}}, records, out["jsonl"],
                             out["rejected.jsonl"], out["stats.json"], s, tmp / "cache.sqlite")
    return {"stats": stats, "records": list(iter_jsonl(out["jsonl"])), "rejected": list(iter_jsonl(out["rejected.jsonl"]))}


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, Served().api_key)


# --- validation ------------------------------------------------------------------------------------


def test_mask_keeps_code_byte_for_byte():
    text = "Use `len(x)` here:\n```python\ndef f():\n    return 1\n```\nand $$x^2$$, not $5."
    m = mask(text)
    assert m.spans == ["`len(x)`", "```python\ndef f():\n    return 1\n```", "$$x^2$$"]
    assert "⟦0⟧" in m.text and "$5" in m.text
    assert unmask(m.text, m) == text
    assert unmask(m.text.replace("⟦1⟧", ""), m) is None
    assert unmask(m.text + " ⟦1⟧", m) is None


@pytest.mark.parametrize(
    "answer,finish,reason",
    [
        ("今天天气很好，我们去公园散步吧。", "stop", None),
        ("", "stop", "empty"),
        ("今天天气很好", "length", "truncated"),
        (REFUSAL, "stop", "refusal"),
        ("抱歉，我无法翻译这段文字。", "stop", "refusal"),
        ("The weather is nice today, let us go for a walk in the park.", "stop", "wrong_language"),
        ("好" * 300, "stop", "length_ratio"),
    ],
)
def test_check_answer_names_each_failure(answer, finish, reason):
    source = "The weather is nice today, let's go for a walk in the park."
    assert check_answer(source, answer, finish, "zh", Checks()) == reason


def test_a_source_that_opens_like_a_refusal_may_be_translated_like_one():
    assert check_answer("Sorry, I am not ChatGPT; I am CaMA.", "抱歉，我不是 ChatGPT，我是 CaMA。", "stop", "zh", Checks()) is None


# --- the stage against the loopback server -------------------------------------------------------------


def test_every_fault_is_survived_and_counted(tmp_path, demo_config, records):
    faults = ["429:1", "500", "stall", "malformed", "wrong_lang", "refusal"]
    with serve(Served(faults=list(faults), stall_seconds=3.0)) as served:
        # one request in flight: the first request meets the four transport faults in a row
        res = run(tmp_path, records["self_instruct_en"], settings(demo_config, served, concurrency=1, max_retries=5))
        stats = res["stats"]
        times = [r["time"] for r in served.requests]
    assert stats["translated"] == stats["records_in"] == 8 and not res["rejected"]
    assert stats["errors"] == {"rate_limited": 1, "server_error": 1, "timeout": 1, "malformed": 1}
    assert stats["retries"] == 4
    # Retry-After: 1 was honoured: the retry came a second after the 429
    assert times[1] - times[0] >= 0.95
    # the wrong-language answer and the refusal were rejected, then asked again with a reminder
    assert stats["rejections_by_attempt"] == {"attempt_0:wrong_language": 1, "attempt_0:refusal": 1}
    reminded = [b for b in served.bodies() if "only." in b["messages"][0]["content"]]
    assert len(reminded) == 2
    for r in res["records"]:
        assert r["lang"] == "zh" and r["id"].endswith("@zh") and r["meta"]["translation"]["mode"] == "both"
        assert all(sum(c >= "\u4e00" for c in m["content"]) > 0 for m in r["messages"])
    assert stats["latency_seconds"]["p50"] is not None and stats["tokens_in"] > 0


def test_code_comes_back_byte_for_byte_or_the_record_is_rejected(tmp_path, demo_config, records):
    originals = {r["id"]: r for r in iter_jsonl(records["humaneval_en"])}
    first = next(iter(originals))
    # the four records' requests start together (one in flight at a time); the fifth is the retry
    with serve(Served(faults=["drop_code", "ok", "ok", "ok", "drop_code"])) as served:
        res = run(tmp_path, records["humaneval_en"], settings(demo_config, served, concurrency=1))
        # an answer that is all code is not sent at all: one request per record, two for the first
        assert len(served.requests) == len(originals) + 1
    assert res["stats"]["rejected"] == {"code_changed": 1}
    assert res["rejected"] == [{"id": first, "reason": "rejected:code_changed"}]
    assert len(res["records"]) == 3
    for r in res["records"]:
        o = originals[r["meta"]["translation"]["from"]]
        assert r["messages"][-1]["content"] == o["messages"][-1]["content"]  # all code, untouched
        code = o["messages"][0]["content"].split("\n\n", 1)[1]  # the prompt's fenced function
        assert code.startswith("```python") and code in r["messages"][0]["content"]
        assert r["messages"][0]["content"] != o["messages"][0]["content"]


def test_a_rerun_sends_nothing_and_question_mode_asks_for_answers(tmp_path, demo_config, records):
    with serve() as served:
        s = settings(demo_config, served)
        first = run(tmp_path, records["self_instruct_en"], s)
        sent = len(served.requests)
        again = run(tmp_path, records["self_instruct_en"], s)
        assert len(served.requests) == sent  # nothing new was sent
        assert again["stats"]["cache_hits"] == sent and again["stats"]["requests"] == 0
        assert again["records"] == first["records"]
        q = run(tmp_path, records["self_instruct_en"], s, mode="question", name="q")
    assert q["stats"]["translated"] == 8
    for r in q["records"]:
        assert r["messages"][-1]["content"].startswith("答：")
    asked = [b for b in served.bodies() if b["messages"][0]["content"].endswith("请用简体中文回答。")]
    assert len(asked) == 8


def test_ie_records_are_remade_from_gold_not_sent(tmp_path, demo_config, records):
    with serve() as served:
        res = run(tmp_path, records["wnut17_en"], settings(demo_config, served))
        assert not served.requests
    originals = {r["id"]: r for r in iter_jsonl(records["wnut17_en"])}
    for r in res["records"]:
        o = originals[r["meta"]["translation"]["from"]]
        assert r["lang"] == "zh" and r["meta"]["translation"]["mode"] == "regenerated"
        assert r["messages"][-1] == o["messages"][-1] and r["ie"] == o["ie"]
        assert "实体" in r["messages"][0]["content"]
        assert parse("ner", r["ie"]["format"], r["messages"][-1]["content"], r["ie"]["labels"]) == r["ie"]["gold"]


def test_the_budget_caps_spending_and_the_rest_is_marked(tmp_path, demo_config, records):
    with serve() as served:
        s = settings(demo_config, served, budget={"tokens": 3000})
        res = run(tmp_path, records["self_instruct_en"], s)
    stats = res["stats"]
    assert 0 < stats["translated"] < 8
    assert stats["untranslated"]["budget"] == 8 - stats["translated"] - sum(stats["rejected"].values())
    assert {r["reason"] for r in res["rejected"]} == {"budget"}
    cache = Cache(tmp_path / "cache.sqlite")
    assert cache.spent()[0] <= 3000
    cache.close()


def test_provider_none_translates_nothing_and_says_so(tmp_path, demo_config, records):
    res = run(tmp_path, records["self_instruct_en"], copy.deepcopy(demo_config["instruct"]["translate"]))
    assert res["records"] == [] and res["stats"]["untranslated"] == {"provider_none": 8}
    assert len(res["rejected"]) == 8


def test_a_missing_key_names_the_variable_not_the_key(tmp_path, demo_config, records, monkeypatch):
    from cama.errors import ConfigError

    monkeypatch.delenv(KEY_ENV)
    with serve() as served, pytest.raises(ConfigError, match=KEY_ENV):
        run(tmp_path, records["self_instruct_en"], settings(demo_config, served))


# --- kill -9 mid-run, then rerun ---------------------------------------------------------------------------

_RUN = """
import json, sys
from cama.instruct.translate.stage import translate_source
args = json.loads(sys.argv[1])
translate_source(**args)
"""


def test_kill_mid_run_then_rerun_sends_no_cached_request_twice_and_keeps_the_budget(tmp_path, demo_config):
    # 40 short real records; the server takes 0.1 s an answer; the run is killed after 12 answers
    src = [r for r in iter_jsonl(convert(tmp_path, "gsm8k_en", source_spec(demo_config, "gsm8k_en", max_records=20), demo_config)["paths"]["records"])]
    write_jsonl(tmp_path / "in.jsonl", src)
    log = tmp_path / "requests.jsonl"
    server = subprocess.Popen([sys.executable, str(Path(__file__).with_name("openai_server.py")), "--delay", "0.1", "--log", str(log)],
                              stdout=subprocess.PIPE, text=True)
    try:
        base_url = server.stdout.readline().strip()
        s = settings(demo_config, Served(base_url=base_url), concurrency=2, budget={"tokens": 9000})
        args = {"name": "gsm", "spec": {"translate": {"to": "zh", "mode": "both"}}, "records": str(tmp_path / "in.jsonl"),
                "out_records": str(tmp_path / "out.jsonl"), "out_rejected": str(tmp_path / "rej.jsonl"),
                "out_stats": str(tmp_path / "stats.json"), "settings": s, "cache_path": str(tmp_path / "cache.sqlite")}
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        proc = subprocess.Popen([sys.executable, "-c", _RUN, json.dumps(args)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cache_file = tmp_path / "cache.sqlite"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if cache_file.exists():
                c = Cache(cache_file)
                n = len(c.keys())
                c.db.close()
                if n >= 12:
                    break
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert not (tmp_path / "out.jsonl").exists()  # nothing that looks complete
        c = Cache(cache_file)
        cached_before = c.keys()
        c.db.close()
        sent_before = sum(1 for _ in open(log))
        assert 12 <= len(cached_before) < 40
        # the rerun, in this process
        stats = translate_source(**{**args, "settings": s})
        sent = [json.loads(line) for line in open(log)][sent_before:]
        keys_sent = {request_key(b["model"], b["messages"], {k: b[k] for k in ("temperature", "max_tokens")}) for b in sent}
        assert not keys_sent & cached_before  # no cached request was sent again
        assert stats["cache_hits"] >= len(cached_before)
        c = Cache(cache_file)
        assert c.spent()[0] <= 9000  # the cap held over both runs
        assert not c.db.execute("SELECT COUNT(*) FROM reservations").fetchone()[0]
        c.close()
        assert stats["untranslated"].get("budget", 0) > 0
        assert stats["translated"] + stats["untranslated"]["budget"] + sum(stats["rejected"].values()) == 20
    finally:
        server.terminate()
        server.wait()


def test_cama_instruct_translate_and_parse_by_hand(tmp_path, demo_config, records, capsys, monkeypatch):
    from cama.cli import main

    with serve() as served:
        code = main(["instruct", "translate", str(records["self_instruct_en"]), str(tmp_path / "zh.jsonl"), "--to", "zh",
                     "--base-url", served.base_url, "--model", "loopback", "--api-key-env", KEY_ENV,
                     "--cache", str(tmp_path / "c.sqlite"), "--config", str(ROOT / "config" / "config.yaml")])
    assert code == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["translated"] == 8
    assert len(list(iter_jsonl(tmp_path / "zh.jsonl"))) == 8 and (tmp_path / "zh.stats.json").exists()
    # the key never reaches an output or the cache
    key = Served().api_key.encode()
    for f in tmp_path.iterdir():
        assert key not in f.read_bytes(), f
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("(Ada, person)\n"))
    assert main(["instruct", "parse", "ner", "tuple", "person,location"]) == 0
    assert json.loads(capsys.readouterr().out) == [["Ada", "person"]]

"""The instruct stage's translation pointed at ``cama serve``: cama's own server as the endpoint.

Real demo records (self-instruct) go through the stage's ``openai`` client to the tiny model
behind the real server. A 2-layer random model cannot translate: every request is answered,
every answer is rejected by the stage's validation with its reason, and the counts add up.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import yaml

pytest.importorskip("openai", reason="the [serve] extra is not installed")
pytest.importorskip("fastapi", reason="the [serve] extra is not installed")

from cama.instruct.records import iter_jsonl  # noqa: E402
from cama.instruct.translate.stage import translate_source  # noqa: E402
from cama.serve.cli import serve_in_thread  # noqa: E402
from cama.serve.models import load_models  # noqa: E402
from cama.serve.openai_api import create_app  # noqa: E402

KEY_ENV = "CAMA_TEST_SERVE_KEY"
_spec = importlib.util.spec_from_file_location("instruct_helpers", Path(__file__).parents[1] / "instruct" / "conftest.py")
instruct = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(instruct)


@pytest.fixture
def long_context_chat(tiny_chat, tmp_path) -> Path:
    """The tiny chat model allowed 4096 positions (RoPE has no learned positions): room for real prompts."""
    out = tmp_path / "tiny-4k"
    shutil.copytree(tiny_chat, out)
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 4096}))
    return out


def test_translation_through_cama_serve_counts_every_answer(long_context_chat, tmp_path, monkeypatch):
    config = instruct.validate_config(yaml.safe_load((instruct.ROOT / "config" / "config.yaml").read_text()))
    spec = instruct.source_spec(config, "self_instruct_en", max_records=6)
    records = instruct.convert(tmp_path, "self_instruct_en", spec, config)["paths"]["records"]
    n_records = sum(1 for _ in iter_jsonl(records))
    assert n_records == 6

    monkeypatch.setenv(KEY_ENV, "local-key")
    models = load_models(long_context_chat, name="tiny", max_batch=16, max_queue=64)
    with models["tiny"].engine.start(), serve_in_thread(create_app(models, max_tokens=2048, api_key_env=KEY_ENV)) as url:
        settings = copy.deepcopy(config["instruct"]["translate"])
        settings.update(provider="openai", base_url=url, model="tiny", api_key_env=KEY_ENV, concurrency=4,
                        max_tokens=48, timeout_seconds=120, max_retries=1)  # fmt: skip
        out = {k: tmp_path / f"out.{k}" for k in ("jsonl", "rejected.jsonl", "stats.json")}
        stats = translate_source("self_instruct_en", {"translate": {"to": "zh", "mode": "both"}}, records,
                                 out["jsonl"], out["rejected.jsonl"], out["stats.json"], settings,
                                 tmp_path / "cache.sqlite")  # fmt: skip
        engine_tokens = models["tiny"].engine.stats["tokens"]

    rejected = list(iter_jsonl(out["rejected.jsonl"]))
    # every request reached the model and was answered: no transport or HTTP errors
    assert stats["answers"] == stats["requests"] > 0 and not stats["errors"] and not stats["untranslated"]
    assert stats["tokens_out"] == engine_tokens  # usage counts are the engine's own
    # the tiny model's answers fail validation, each with its reason, and nothing is lost
    assert stats["translated"] == 0 and list(iter_jsonl(out["jsonl"])) == []
    assert sum(stats["rejected"].values()) == len(rejected) == n_records
    assert set(stats["rejected"]) <= {"truncated", "wrong_language", "length_ratio", "empty", "refusal"}
    assert {r["id"] for r in rejected} == {r["id"] for r in iter_jsonl(records)}

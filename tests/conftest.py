"""Shared fixtures: demo-like shards and a seeded tiny LLaMA, built once (pretrain, evaluate)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
from hypothesis import settings

# CI runs the same property examples every time (CI=true there): a failure is then a change
# in the code, not a new draw. Locally, hypothesis explores afresh on each run.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

_spec = importlib.util.spec_from_file_location("pretrain_blend", Path(__file__).parent / "pretrain" / "_blend.py")
_blend = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_blend)

TINY = dict(layers=2, hidden_size=64, heads=4, kv_heads=2, intermediate_size=172, max_position_embeddings=256)


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> dict:
    """tokenizer/, shards/blend.json (samples of <= 128 tokens) and heldout/{lang}.jsonl."""
    return _blend.build(tmp_path_factory.mktemp("data"), {"zh": 150, "en": 40, "code": 60})


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory, demo_data) -> Path:
    from cama.pretrain.config import model_init_from_dict
    from cama.pretrain.model import init_model

    out = tmp_path_factory.mktemp("base") / "base"
    init_model(tokenizer_dir=demo_data["tokenizer"], out_dir=out, init=model_init_from_dict(TINY))
    return out

"""Fixtures for the evaluation tests: the pretraining tests' demo-like data and tiny model."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "pretrain_blend", Path(__file__).resolve().parents[1] / "pretrain" / "_blend.py"
)
_blend = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_blend)

TINY = dict(layers=2, hidden_size=64, heads=4, kv_heads=2, intermediate_size=172, max_position_embeddings=256)


@pytest.fixture(scope="session")
def eval_data(tmp_path_factory) -> dict:
    return _blend.build(tmp_path_factory.mktemp("evaldata"), {"zh": 150, "en": 40, "code": 60})


@pytest.fixture(scope="session")
def eval_base(tmp_path_factory, eval_data) -> Path:
    from cama.pretrain.config import ModelInit
    from cama.pretrain.model import init_model

    out = tmp_path_factory.mktemp("evalbase") / "base"
    init_model(tokenizer_dir=eval_data["tokenizer"], out_dir=out, init=ModelInit(**TINY))
    return out

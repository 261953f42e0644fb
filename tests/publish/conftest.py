"""Fixtures for the publish tests: the demo-like tiny LLaMA (``tiny_base``), tuned, and its diff."""

from __future__ import annotations

from pathlib import Path

import pytest
from _models import load_state, save_model, trained


@pytest.fixture(scope="session")
def tuned_tiny(tiny_base, tmp_path_factory) -> Path:
    """The demo-like tiny model after "training", in 3 shards (the base is one file)."""
    out = tmp_path_factory.mktemp("tuned") / "tuned"
    return save_model(trained(load_state(tiny_base)), out, tiny_base, shards=3)


@pytest.fixture(scope="session")
def tiny_diff(tiny_base, tuned_tiny, tmp_path_factory) -> Path:
    from cama.publish.diff import make_diff

    out = tmp_path_factory.mktemp("diff") / "diff"
    make_diff(base=tiny_base, tuned=tuned_tiny, out=out, max_shard_size="100KB")
    return out

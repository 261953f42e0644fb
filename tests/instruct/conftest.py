"""Helpers for the instruct tests: the demo config's sources, fetched and converted in tmp folders."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from cama.config import validate_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def demo_config() -> dict:
    return validate_config(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()))


def source_spec(config: dict, name: str, **changes) -> dict:
    """A demo source or IE set by name, with ``changes`` applied (a deep copy)."""
    spec = copy.deepcopy(config["instruct"]["sources"].get(name) or config["evaluate"]["ie"]["sets"][name])
    spec.update(changes)
    return spec


def fetch(tmp: Path, name: str, spec: dict, config: dict) -> Path:
    """What the download rule does: the source's files and manifest in ``tmp/raw/{name}``."""
    from cama.corpus.download import download_source

    raw = tmp / "raw" / name
    download_source(name, spec, str(raw), config["download"], str(ROOT))
    return raw


def convert(tmp: Path, name: str, spec: dict, config: dict, eval_set: bool = False) -> dict:
    """Fetch and convert one source (or IE set); returns stats with the output paths added."""
    from cama.instruct.convert import build_eval_set, convert_source

    raw = fetch(tmp, name, spec, config)
    out = tmp / ("eval" if eval_set else "sources")
    paths = {
        "records": out / f"{name}.jsonl",
        "quarantine": out / f"{name}.quarantine.parquet",
        "stats": out / f"{name}.stats.json",
    }
    fn = build_eval_set if eval_set else convert_source
    stats = fn(name, spec, raw, paths["records"], paths["quarantine"], paths["stats"], config["instruct"]["ie"], 0)
    return {**stats, "paths": paths}

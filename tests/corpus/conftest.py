"""Fixtures for the normalise stage: validated specs, raw folders with a manifest, a runner."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cama.config import validate_config
from cama.io import read_json, write_json

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "data" / "demo"


def validated(entry: dict, normalise: dict | None = None) -> tuple[dict, dict]:
    """A source entry and normalise settings with the schema's defaults filled in."""
    config = validate_config({"sources": {"s": dict(entry)}, "normalise": dict(normalise or {})})
    return config["sources"]["s"], config["normalise"]


@pytest.fixture
def spec_of() -> Callable[..., dict]:
    """``spec_of(lang="en", text="text")`` -> the validated source entry."""

    def make(**entry) -> dict:
        entry.setdefault("uri", "unused")
        return validated(entry)[0]

    return make


@pytest.fixture
def settings_of() -> Callable[..., dict]:
    """``settings_of(max_doc_bytes=100)`` -> the validated normalise section."""

    def make(**normalise) -> dict:
        return validated({"lang": "en", "uri": "unused"}, normalise)[1]

    return make


def write_raw_dir(raw_dir: Path, files: list[Path | tuple[str, bytes]], source: str = "s") -> Path:
    """Copy files (or write ``(name, bytes)``) into ``raw_dir`` with a download-style manifest."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for f in files:
        if isinstance(f, tuple):
            name, data = f
            (raw_dir / name).parent.mkdir(parents=True, exist_ok=True)
            (raw_dir / name).write_bytes(data)
        else:
            name = f.name
            shutil.copyfile(f, raw_dir / name)
        path = raw_dir / name
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        entries.append(
            {
                "path": name,
                "url": str(f if not isinstance(f, tuple) else name),
                "size": path.stat().st_size,
                "sha256": sha,
            }
        )
    write_json(raw_dir / "manifest.json", {"source": source, "files": entries})
    return raw_dir


@pytest.fixture
def raw_dir_of(tmp_path: Path) -> Callable[..., Path]:
    counter = iter(range(1000))

    def make(*files: Path | tuple[str, bytes]) -> Path:
        return write_raw_dir(tmp_path / f"raw{next(counter)}", list(files))

    return make


class Run:
    """What one normalise_source call wrote."""

    def __init__(self, stats: dict, out: Path):
        self.stats = stats
        self.docs = pq.read_table(out / "docs.parquet").to_pylist()
        self.rejected = pq.read_table(out / "rejected.parquet").to_pylist()
        self.quarantine = pq.read_table(out / "quarantine.parquet").to_pylist()
        self.stats_file = read_json(out / "stats.json")

    def balanced(self) -> bool:
        s = self.stats
        return (
            s["records_in"]
            == s["docs_out"] + sum(s["rejected"].values()) + sum(s["quarantined"].values())
            and s["docs_out"] == len(self.docs)
            and sum(s["rejected"].values()) == sum(r["scope"] == "doc" for r in self.rejected)
            and sum(s["quarantined"].values()) == len(self.quarantine)
        )


@pytest.fixture
def normalise(tmp_path: Path, settings_of) -> Callable[..., Run]:
    """``normalise(raw_dir, spec, **settings)`` runs the stage into a fresh folder."""
    from cama.corpus.normalise import normalise_source

    counter = iter(range(1000))

    def run(raw_dir: Path, spec: dict, name: str = "s", **settings) -> Run:
        out = tmp_path / f"out{next(counter)}"
        stats = normalise_source(
            name=name,
            spec=spec,
            raw_dir=raw_dir,
            out_docs=out / "docs.parquet",
            out_rejected=out / "rejected.parquet",
            out_quarantine=out / "quarantine.parquet",
            out_stats=out / "stats.json",
            settings=settings_of(**settings),
        )
        return Run(stats, out)

    return run

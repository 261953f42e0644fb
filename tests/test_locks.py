"""Snakemake's directory locks: a dead run's are removed, a live run's and another host's are kept."""

from __future__ import annotations

import json
import subprocess
import sys

from cama import locks


def _locked(tmp_path, names=("0.input.lock", "0.output.lock")):
    lockdir = tmp_path / ".snakemake" / "locks"
    lockdir.mkdir(parents=True)
    for name in names:
        (lockdir / name).write_text("results/x\n")
    return lockdir


def test_a_killed_runs_locks_are_removed(tmp_path):
    lockdir = _locked(tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    assert locks.claim(tmp_path / ".snakemake", pid=proc.pid) is not None
    assert locks.clear_stale(tmp_path / ".snakemake") == []  # alive: kept
    assert sorted(p.name for p in lockdir.glob("*.lock")) == ["0.input.lock", "0.output.lock"]
    proc.kill()
    proc.wait()
    removed = locks.clear_stale(tmp_path / ".snakemake")
    assert len(removed) == 1 and f"pid {proc.pid}" in removed[0]
    assert list(lockdir.iterdir()) == []


def test_another_hosts_locks_and_unrecorded_locks_are_kept(tmp_path):
    lockdir = _locked(tmp_path)
    (lockdir / "cama-owner.1.json").write_text(json.dumps(
        {"host": "another-node", "pid": 1, "start": "0", "locks": ["0.input.lock", "0.output.lock"]}))  # fmt: skip
    assert locks.clear_stale(tmp_path / ".snakemake") == []
    assert (lockdir / "0.input.lock").exists() and (lockdir / "0.output.lock").exists()


def test_a_run_claims_only_the_locks_no_other_run_holds(tmp_path):
    lockdir = _locked(tmp_path, ("0.input.lock", "0.output.lock", "1.input.lock", "1.output.lock"))
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (lockdir / f"cama-owner.{other.pid}.json").write_text(json.dumps(
            {"host": "h", "pid": other.pid, "start": "0", "locks": ["0.input.lock", "0.output.lock"]}))  # fmt: skip
        mine = json.loads(locks.claim(tmp_path / ".snakemake").read_text())
        assert mine["locks"] == ["1.input.lock", "1.output.lock"]
    finally:
        other.kill()
        other.wait()

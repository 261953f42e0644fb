"""Lint: ruff on the Python code, snakefmt on the Snakefile and rules (as CI of snakemake-workflows does)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*cmd):
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)


@pytest.mark.skipif(shutil.which("ruff") is None and not Path(sys.executable).with_name("ruff").exists(), reason="ruff not installed")
def test_ruff_is_clean():
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    proc = run(ruff, "check", "src", "scripts", "tests", "benchmarks")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_snakefmt_is_clean():
    proc = run(sys.executable, "-m", "snakefmt", "--check", "Snakefile", "rules")
    assert proc.returncode == 0, proc.stdout + proc.stderr

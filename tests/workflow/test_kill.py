"""``kill -9`` of the whole Snakemake process group mid-pretraining: no training process survives,
and the same command run again (no ``--unlock``) resumes from the last complete checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _training(workdir: Path) -> dict[int, str]:
    """Processes of this run's training (the launcher, torchrun, the ranks): by command line and
    working directory."""
    out = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if "cama" in cmd and "pretrain" in cmd and os.readlink(proc / "cwd") == str(workdir):
                out[int(proc.name)] = cmd
        except OSError:
            continue
    return out


def _snakemake(workdir: Path, configfile: Path, log) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(configfile), "--cores", "2", "results/pretrain/stats.json"]  # fmt: skip
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    # its own process group, as a terminal gives a command: kill -9 of that group is the test
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def test_kill_9_of_the_workflow_stops_training_and_the_rerun_resumes(tmp_path):
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["pretrain"].update(max_steps=24, save_steps=4, logging_steps=1)
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config, allow_unicode=True))
    workdir = (tmp_path / "run").resolve()
    workdir.mkdir()
    results = workdir / "results"
    marker = results / "pretrain" / "checkpoints" / "checkpoint-4" / "cama_config.json"

    with open(tmp_path / "first.log", "w") as log:
        proc = _snakemake(workdir, configfile, log)
        deadline = time.time() + 600
        while not marker.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        running = _training(workdir)
        os.killpg(proc.pid, signal.SIGKILL)  # Snakemake, its job's shell and the launcher
        proc.wait()
    assert marker.exists(), (tmp_path / "first.log").read_text()[-3000:]
    ranks = [pid for pid, c in running.items() if "cama.train.worker" in c and "torch.distributed.run" not in c]
    assert len(ranks) == 2, running  # the two training processes were there

    t0 = time.time()
    while _training(workdir) and time.time() - t0 < 20:
        time.sleep(0.2)
    left = _training(workdir)
    assert not left, f"training processes outlived the kill by {time.time() - t0:.0f} s: {left}"
    assert not (results / "pretrain" / "model").exists()

    # the same command again: no --unlock, and training resumes where the checkpoint left it
    with open(tmp_path / "second.log", "w") as log:
        rerun = _snakemake(workdir, configfile, log)
        assert rerun.wait(timeout=600) == 0, (tmp_path / "second.log").read_text()[-5000:]
    second = (tmp_path / "second.log").read_text()
    assert "removed the directory locks of a Snakemake run that was killed" in second
    stats = json.loads((results / "pretrain" / "stats.json").read_text())
    assert stats["steps"] == 24 and stats["resumed_from_step"] >= 4
    assert stats["session_steps"] == 24 - stats["resumed_from_step"]
    assert "resuming from" in (results / "logs" / "pretrain" / "pretrain.log").read_text()

"""cama publish and cama download against a loopback Hub that speaks the Hub's HTTP API.

Every command runs as a user runs it: ``cama ...`` in a fresh process, the token in ``HF_TOKEN``,
the Hub in ``HF_ENDPOINT``. The fake Hub (``tests/hub_server.py``) checks the token, takes the
upload through preupload, the LFS batch API and the commit endpoint, and serves downloads with
``Range`` support. ``HF_HUB_DISABLE_XET=1``: the Xet storage protocol is not faked (see there).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _models import load_state, same_files, save_model, trained
from hub_server import serve_hub

from cama.publish.folder import SUMS, build_publish_folder, list_files

TOKEN = "hf_PLANTEDsecretTOKEN0123456789abcdefXYZ"
REPO = "cama-org/cama-tiny"
SETTINGS = {
    "repo_id": REPO,
    "card": {"model_name": "cama-tiny", "license": "apache-2.0", "base_model": None, "language": ["zh", "en"],
             "tags": ["llama"], "datasets": [], "data_licenses": {}},
}  # fmt: skip


def cama(*args: str, env: dict, timeout: int = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cama.cli", "-v", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def hub_env(tmp: Path, endpoint: str, token: str | None = TOKEN) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(
        HF_ENDPOINT=endpoint,
        HF_HOME=str(tmp / "hf_home"),
        HF_HUB_DISABLE_XET="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DOWNLOAD_TIMEOUT="20",
    )
    if token:
        env["HF_TOKEN"] = token
    return env


@pytest.fixture(scope="module")
def folder(tiny_diff, tuned_tiny, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hubpub") / "publish"
    build_publish_folder(diff=tiny_diff, tuned=tuned_tiny, out=out, settings=SETTINGS)
    return out


def test_publish_then_download_and_recover(folder, tiny_base, tuned_tiny, tmp_path):
    logs = []
    with serve_hub(token=TOKEN) as hub:
        env = hub_env(tmp_path, hub.endpoint)
        # the plan: nothing there yet
        r = cama("publish", "--repo-id", REPO, "--folder", str(folder), "--dry-run", env=env)
        logs.append(r)
        assert r.returncode == 0, r.stderr
        assert f"repo {REPO} (model): does not exist: it will be created (private)" in r.stdout
        files = list_files(folder)
        assert f"{len(files)} file(s)" in r.stdout and r.stdout.count("\nnew ") == len(files)
        assert ("model", REPO) not in hub.repos  # a dry run changes nothing

        r = cama("publish", "--repo-id", REPO, "--folder", str(folder), "--record", str(tmp_path / "rec.json"), env=env)
        logs.append(r)
        assert r.returncode == 0, r.stderr
        repo = hub.repo(REPO, "model")
        assert repo.private and sorted(repo.files) == files
        assert all(repo.files[p] == (folder / p).read_bytes() for p in files)
        assert {p for p in files if p.endswith(".safetensors")} <= repo.lfs  # weights went through LFS
        calls = {(m, p) for m, p in hub.requests}
        assert ("POST", f"/api/models/{REPO}/preupload/main") in calls
        assert ("POST", f"/{REPO}.git/info/lfs/objects/batch") in calls
        assert ("POST", f"/api/models/{REPO}/commit/main") in calls
        assert f"all {len(files)} files verified on the Hub" in r.stdout

        # a second plan finds every file there, unchanged
        r = cama("publish", "--repo-id", REPO, "--folder", str(folder), "--dry-run", env=env)
        logs.append(r)
        assert r.stdout.count("\nunchanged ") == len(files) and "0 file(s), 0 B to upload" in r.stdout

        # a user: download the diff only, verify, recover, in one command
        local, model = tmp_path / "dl", tmp_path / "model"
        r = cama("download", "--repo-id", REPO, "--only", "diff", "--local-dir", str(local),
                 "--recover", "--base", str(tiny_base), "--out", str(model), env=env)  # fmt: skip
        logs.append(r)
        assert r.returncode == 0, r.stderr
        assert same_files(tuned_tiny, model) == []  # the tuned model, byte for byte
        assert "every tensor verified" in r.stdout
        assert (local / "README.md").is_file() and (local / "diff" / "manifest.json").is_file()
    assert f"Bearer {TOKEN}" in hub.auth_seen  # the token was really used ...
    # ... and reached no file, log, card or output
    for proc in logs:
        assert TOKEN not in proc.stdout + proc.stderr
    for root in (folder, tmp_path):
        for p in root.rglob("*"):
            if p.is_file():
                assert TOKEN.encode() not in p.read_bytes(), p


def test_download_only_the_adapter(tiny_diff, tuned_tiny, tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 16}')
    (adapter / "adapter_model.safetensors").write_bytes(b"\0" * 4096)
    out = tmp_path / "publish"
    build_publish_folder(diff=tiny_diff, tuned=tuned_tiny, out=out, settings=SETTINGS, adapter=adapter)
    files = {p: (out / p).read_bytes() for p in list_files(out)}
    with serve_hub(models={REPO: files}) as hub:
        r = cama("download", "--repo-id", REPO, "--only", "lora", "--local-dir", str(tmp_path / "dl"),
                 env=hub_env(tmp_path, hub.endpoint, None))  # fmt: skip
    assert r.returncode == 0, r.stderr
    got = list_files(tmp_path / "dl")
    assert "lora/adapter_model.safetensors" in got and "README.md" in got and "tokenizer.json" in got
    assert not [p for p in got if p.startswith("diff/")]
    n = sum(1 for p in files if not p.startswith("diff/")) - 1  # all but the diff, less SHA256SUMS itself
    assert f"{n} files match {SUMS}" in r.stdout


def test_publish_needs_a_token_from_the_environment(folder, tmp_path):
    with serve_hub(token=TOKEN) as hub:
        r = cama("publish", "--repo-id", REPO, "--folder", str(folder), env=hub_env(tmp_path, hub.endpoint, token=None))
        assert r.returncode == 1
        assert "no Hub token: set HF_TOKEN" in r.stderr
        r = cama("publish", "--repo-id", REPO, "--folder", str(folder), env=hub_env(tmp_path, hub.endpoint, token="hf_wrong"))
        assert r.returncode == 1 and "401" in r.stderr and "hf_wrong" not in r.stdout + r.stderr
        assert ("model", REPO) not in hub.repos


def test_a_damaged_download_is_named_and_removed(folder, tmp_path):
    files = {p: (folder / p).read_bytes() for p in list_files(folder)}
    with serve_hub(models={REPO: files}) as hub:
        target = next(p for p in files if p.startswith("diff/") and p.endswith(".safetensors"))
        bad = bytearray(files[target])
        bad[-3] ^= 0xFF
        hub.corrupt[target] = bytes(bad)
        r = cama("download", "--repo-id", REPO, "--local-dir", str(tmp_path / "dl"), env=hub_env(tmp_path, hub.endpoint, None))
    assert r.returncode == 1
    assert "SHA256SUMS says" in r.stderr
    assert target in r.stderr and "run the download again" in r.stderr
    assert not (tmp_path / "dl" / target).exists()


@pytest.fixture(scope="module")
def big_folder(tiny_base, tmp_path_factory) -> tuple[Path, Path, Path]:
    """A model with a 12 MB embedding, so one diff shard outlasts huggingface_hub's 10 MB chunks."""
    import torch

    from cama.publish.diff import make_diff

    tmp = tmp_path_factory.mktemp("big")
    state = load_state(tiny_base)
    state["model.embed_tokens.weight"] = torch.randn(24000, 128) * 0.02
    base = save_model(state, tmp / "base", tiny_base, config={"vocab_size": 24000})
    tuned = save_model(trained(state), tmp / "tuned", tiny_base, config={"vocab_size": 24000})
    make_diff(base=base, tuned=tuned, out=tmp / "diff")
    build_publish_folder(diff=tmp / "diff", tuned=tuned, out=tmp / "publish", settings=SETTINGS)
    return base, tuned, tmp / "publish"


def test_a_dropped_connection_resumes_where_it_stopped(big_folder, tmp_path):
    base, tuned, folder = big_folder
    files = {p: (folder / p).read_bytes() for p in list_files(folder)}
    shard = max((p for p in files if p.endswith(".safetensors")), key=lambda p: len(files[p]))
    assert len(files[shard]) > 11 * 2**20
    with serve_hub(models={REPO: files}) as hub:
        hub.drop[shard] = 10 * 2**20 + 12345  # the line dies after one 10 MB chunk reached the disk
        r = cama("download", "--repo-id", REPO, "--local-dir", str(tmp_path / "dl"), "--recover", "--base", str(base),
                 "--out", str(tmp_path / "model"), env=hub_env(tmp_path, hub.endpoint, None))  # fmt: skip
        assert r.returncode == 0, r.stderr
        ranges = [rng for p, rng in hub.ranges if p == shard]
    assert ranges == [f"bytes={10 * 2**20}-"]  # it went on from the byte it had, not from the start
    assert "Trying to resume download" in r.stderr
    assert (tmp_path / "dl" / shard).read_bytes() == files[shard]
    assert same_files(tuned, tmp_path / "model") == []
    assert f"match {SUMS}" in r.stdout


def test_a_killed_download_fetches_only_what_is_missing(big_folder, tmp_path):
    """huggingface_hub 2.x keeps no partial file across processes (its PR #4228: a partial file is
    per process and removed on failure), so after a kill the rerun fetches the cut file again from
    its start, and none of the files that were finished."""
    base, tuned, folder = big_folder
    files = {p: (folder / p).read_bytes() for p in list_files(folder)}
    shard = max((p for p in files if p.endswith(".safetensors")), key=lambda p: len(files[p]))
    local = tmp_path / "dl"
    with serve_hub(models={REPO: files}) as hub:
        env = hub_env(tmp_path, hub.endpoint, None)
        hub.stall[shard] = 10 * 2**20 + 12345
        proc = subprocess.Popen([sys.executable, "-m", "cama.cli", "download", "--repo-id", REPO, "--local-dir", str(local)],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        others = [p for p in files if p != shard]
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not all((local / p).is_file() for p in others):
            time.sleep(0.2)
        time.sleep(0.5)
        os.kill(proc.pid, signal.SIGKILL)  # the laptop dies while the big shard is on its way
        proc.communicate(timeout=30)
        assert all((local / p).is_file() for p in others) and not (local / shard).exists()
        hub.release.set()
        r = cama("download", "--repo-id", REPO, "--local-dir", str(local), env=env)
        assert r.returncode == 0, r.stderr
        gets = [p.split("/", 5)[5] for m, p in hub.requests if m == "GET" and "/resolve/" in p]
    assert gets.count(shard) == 2
    twice = [o for o in others if gets.count(o) != 1]
    assert twice == []  # the finished files: once
    assert (local / shard).read_bytes() == files[shard]
    assert not list(local.rglob("*.incomplete"))

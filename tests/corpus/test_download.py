"""The download stage against real things: a loopback HTTP server, a fake Hub, real folders."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from http_server import serve_files
from hub_server import serve_hub

import cama.corpus.download as dl
from cama.corpus.download import download_source
from cama.corpus.sources import (
    HubRepo,
    UriKind,
    classify_uri,
    expand_path,
    glob_base,
    local_matches,
    matches_include,
    parse_hub_uri,
    url_filename,
)
from cama.errors import DownloadError, SourceError

REPO = Path(__file__).resolve().parents[2]
SETTINGS = {"retries": 3, "backoff_seconds": 0.0, "timeout_seconds": 5, "link_local": False}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def spec(uri, **kw) -> dict:
    return {"lang": "en", "uri": uri, "format": "auto", "include": [], "revision": "main", **kw}


def manifest_of(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


# --- sources.py ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri, kind",
    [
        ("hf://datasets/owner/name", UriKind.HUB),
        ("https://example.org/a.jsonl.gz", UriKind.HTTP),
        ("HTTP://example.org/a.txt", UriKind.HTTP),
        ("data/demo/code/humaneval_*.jsonl.gz", UriKind.GLOB),
        ("data/demo/en/c4_demo.jsonl.gz", UriKind.LOCAL),
        ("$DATA/x.txt", UriKind.LOCAL),
        ("file:///tmp/x.txt", UriKind.LOCAL),
    ],
)
def test_classify_uri(uri, kind):
    assert classify_uri(uri) is kind


def test_classify_uri_rejects_unknown_scheme():
    with pytest.raises(SourceError, match="s3://bucket/x.*unsupported uri scheme 's3'"):
        classify_uri("s3://bucket/x")


def test_parse_hub_uri():
    assert parse_hub_uri("hf://datasets/owner/name") == HubRepo("dataset", "owner/name", "")
    assert parse_hub_uri("hf://datasets/owner/name/data/train") == HubRepo(
        "dataset", "owner/name", "data/train"
    )
    assert parse_hub_uri("hf://datasets/o/n").uri("a/b.jsonl") == "hf://datasets/o/n/a/b.jsonl"
    for bad in ["hf://models/owner/name", "hf://datasets/owner", "hf://datasets/o/n@v1"]:
        with pytest.raises(SourceError, match=bad.replace("@", ".")):
            parse_hub_uri(bad)


def test_url_filename():
    assert url_filename("https://h/x/wiki%20dump.xml.bz2?download=1") == "wiki dump.xml.bz2"
    with pytest.raises(SourceError, match="https://h/x/: the URL does not end"):
        url_filename("https://h/x/")


def test_expand_path(monkeypatch, tmp_path):
    monkeypatch.setenv("CAMA_DATA", "/data/corpora")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert expand_path("$CAMA_DATA/a.txt", "/wf") == Path("/data/corpora/a.txt")
    assert expand_path("~/a.txt", "/wf") == tmp_path / "a.txt"
    assert expand_path("data/a.txt", "/wf") == Path("/wf/data/a.txt")
    assert expand_path("/abs/a.txt", "/wf") == Path("/abs/a.txt")


def test_glob_base_and_include():
    assert glob_base("/a/b/*/c/*.gz") == Path("/a/b")
    assert glob_base("data/**/x.txt") == Path("data")
    assert matches_include("pkg/mod.py", ["*.py"])
    assert matches_include("pkg/mod.py", ["pkg/*.py"])
    assert not matches_include("other/mod.py", ["pkg/*.py"])
    assert not matches_include("pkg/mod.pyc", ["*.py"])
    assert matches_include("anything", [])


def test_local_matches_glob_is_sorted_and_relative(tmp_path):
    for rel in ["b/2.txt", "a/1.txt", "a/3.txt", "a/skip.bin"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    got = local_matches(tmp_path / "*" / "*.txt")
    assert [rel for _, rel in got] == ["a/1.txt", "a/3.txt", "b/2.txt"]
    assert [rel for _, rel in local_matches(tmp_path / "a", ["*.txt"])] == ["1.txt", "3.txt"]
    assert local_matches(tmp_path / "missing") == []


# --- local sources ------------------------------------------------------------------------


def test_glob_over_demo_code_gives_four_files(tmp_path):
    out = tmp_path / "raw" / "humaneval_code"
    m = download_source(
        "humaneval_code",
        spec("data/demo/code/humaneval_*.jsonl.gz", lang="code"),
        str(out),
        SETTINGS,
        str(REPO),
    )
    originals = sorted((REPO / "data/demo/code").glob("humaneval_*.jsonl.gz"))
    assert len(originals) == 4
    assert [f["path"] for f in m["files"]] == [p.name for p in originals]
    for f, orig in zip(m["files"], originals, strict=True):
        assert f["url"] == str(orig)
        assert f["size"] == orig.stat().st_size
        assert f["sha256"] == sha(orig.read_bytes())
        assert (out / f["path"]).read_bytes() == orig.read_bytes()  # kept compressed, byte for byte
    assert manifest_of(out) == m
    assert m["source"] == "humaneval_code" and m["total_bytes"] == sum(
        p.stat().st_size for p in originals
    )
    assert sorted(os.listdir(tmp_path / "raw")) == ["humaneval_code"]  # no temporary left behind


def test_code_tree_copies_stdlib_json_package(tmp_path):
    src = Path(json.__file__).parent
    out = tmp_path / "raw" / "json_code"
    m = download_source(
        "json_code",
        spec(str(src), lang="code", format="code_tree", include=["*.py"]),
        str(out),
        SETTINGS,
        str(tmp_path),
    )
    expected = sorted(p.relative_to(src).as_posix() for p in src.rglob("*.py"))
    assert [f["path"] for f in m["files"]] == expected
    assert "__init__.py" in expected and "decoder.py" in expected
    for f in m["files"]:
        assert (out / f["path"]).read_bytes() == (src / f["path"]).read_bytes()
        assert f["sha256"] == sha((src / f["path"]).read_bytes())
    assert not any(p.suffix == ".pyc" for p in out.rglob("*"))


def test_link_local_hard_links(tmp_path):
    (tmp_path / "a.txt").write_text("hello")
    out = tmp_path / "raw" / "s"
    download_source("s", spec("a.txt"), str(out), {**SETTINGS, "link_local": True}, str(tmp_path))
    assert (out / "a.txt").stat().st_ino == (tmp_path / "a.txt").stat().st_ino


def test_missing_local_file_names_source_and_path(tmp_path):
    out = tmp_path / "raw" / "s"
    with pytest.raises(SourceError, match=f"source s: no file at {tmp_path}/nope.jsonl"):
        download_source("s", spec(["nope.jsonl"]), str(out), SETTINGS, str(tmp_path))
    assert not out.exists()


def test_unset_variable_is_hinted(tmp_path, monkeypatch):
    monkeypatch.delenv("CAMA_NOT_SET", raising=False)
    with pytest.raises(SourceError, match="environment variable"):
        download_source(
            "s", spec("$CAMA_NOT_SET/x.txt"), str(tmp_path / "o"), SETTINGS, str(tmp_path)
        )


def test_name_clash_between_uris_is_an_error(tmp_path):
    for d in ["x", "y"]:
        (tmp_path / d).mkdir()
        (tmp_path / d / "same.txt").write_text(d)
    with pytest.raises(SourceError, match="'same.txt'.*x/same.txt.*y/same.txt"):
        download_source(
            "s", spec(["x/same.txt", "y/same.txt"]), str(tmp_path / "o"), SETTINGS, str(tmp_path)
        )
    assert not (tmp_path / "o").exists()


def test_rerun_replaces_an_existing_out_dir(tmp_path):
    (tmp_path / "a.txt").write_text("new")
    out = tmp_path / "raw" / "s"
    out.mkdir(parents=True)
    (out / "stale.txt").write_text("old")
    (tmp_path / "raw" / ".s.tmp-999999").mkdir()  # the staging folder of a killed run
    download_source("s", spec("a.txt"), str(out), SETTINGS, str(tmp_path))
    assert sorted(p.name for p in out.iterdir()) == ["a.txt", "manifest.json"]
    assert sorted(os.listdir(tmp_path / "raw")) == ["s"]


def test_failure_midway_leaves_no_out_dir(tmp_path, monkeypatch):
    for i in range(3):
        (tmp_path / f"f{i}.txt").write_text(str(i))
    calls = []
    real = dl.place_file

    def place_then_fail(src, dest, link=False):
        calls.append(src)
        if len(calls) == 2:  # the first file is already in the staging folder
            raise OSError("disk full (simulated)")
        real(src, dest, link)

    monkeypatch.setattr(dl, "place_file", place_then_fail)
    out = tmp_path / "raw" / "s"
    with pytest.raises(OSError, match="simulated"):
        download_source("s", spec("f*.txt"), str(out), SETTINGS, str(tmp_path))
    assert len(calls) == 2
    assert not out.exists()
    assert os.listdir(tmp_path / "raw") == []  # the staging folder is gone too


# --- HTTP ---------------------------------------------------------------------------------

BODY = bytes(range(256)) * 400  # 100 KiB, not text, so truncation shows in the hash


def test_http_download_resumes_after_dropped_connection(tmp_path):
    with serve_files({"data/big.bin.gz": BODY}) as srv:
        srv.faults["data/big.bin.gz"] = ["drop", "drop"]
        out = tmp_path / "raw" / "web"
        m = download_source(
            "web", spec(srv.url("data/big.bin.gz")), str(out), SETTINGS, str(tmp_path)
        )
        gets = srv.gets("data/big.bin.gz")
    # 1st: whole file, dropped at half; 2nd: resumes at 50 KiB, dropped at half the rest; 3rd: the rest
    assert [g["range"] for g in gets] == [None, "bytes=51200-", "bytes=76800-"]
    assert m["files"] == [
        {
            "path": "big.bin.gz",
            "url": srv.url("data/big.bin.gz"),
            "size": len(BODY),
            "sha256": sha(BODY),
        }
    ]
    assert (out / "big.bin.gz").read_bytes() == BODY
    assert not (tmp_path / "raw" / ".partial").exists()  # cleaned once complete


def test_partial_download_survives_a_failed_run_and_resumes(tmp_path):
    out = tmp_path / "raw" / "web"
    with serve_files({"big.bin": BODY}) as srv:
        srv.faults["big.bin"] = ["drop", "503", "503"]
        with pytest.raises(DownloadError, match=f"{srv.url('big.bin')}: download failed after 3"):
            download_source(
                "web", spec(srv.url("big.bin")), str(out), {**SETTINGS, "retries": 2}, str(tmp_path)
            )
        assert not out.exists()
        part = tmp_path / "raw" / ".partial" / "web" / "big.bin.part"
        assert part.read_bytes() == BODY[: len(BODY) // 2]  # what arrived is kept
        m = download_source("web", spec(srv.url("big.bin")), str(out), SETTINGS, str(tmp_path))
        assert srv.gets("big.bin")[-1]["range"] == f"bytes={len(BODY) // 2}-"
    assert m["files"][0]["sha256"] == sha(BODY)
    assert not part.exists()


def test_server_ignoring_range_restarts_from_zero(tmp_path):
    with serve_files({"f.txt": BODY}) as srv:
        srv.faults["f.txt"] = ["drop", "ignore-range"]
        m = download_source(
            "w", spec(srv.url("f.txt")), str(tmp_path / "o"), SETTINGS, str(tmp_path)
        )
        assert [g["range"] for g in srv.gets("f.txt")] == [None, "bytes=51200-"]
    assert m["files"][0]["size"] == len(BODY) and m["files"][0]["sha256"] == sha(BODY)


def test_416_on_a_complete_part_is_done(tmp_path):
    part = tmp_path / ".partial" / "w" / "f.txt.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(BODY)
    with serve_files({"f.txt": BODY}) as srv:
        m = download_source(
            "w", spec(srv.url("f.txt")), str(tmp_path / "w"), SETTINGS, str(tmp_path)
        )
        assert [g["range"] for g in srv.gets("f.txt")] == [f"bytes={len(BODY)}-"]
    assert m["files"][0]["sha256"] == sha(BODY)


def test_retries_after_503_then_succeeds(tmp_path):
    sleeps = []
    with serve_files({"a.jsonl": b'{"text": "hi"}\n'}) as srv:
        srv.faults["a.jsonl"] = ["503", "503"]
        part = tmp_path / "a.jsonl.part"
        dl.download_with_retries(
            srv.url("a.jsonl"), part, {**SETTINGS, "backoff_seconds": 0.5}, sleep=sleeps.append
        )
        assert len(srv.gets("a.jsonl")) == 3
    assert part.read_bytes() == b'{"text": "hi"}\n'
    assert sleeps == [0.5, 1.0]  # exponential back-off from backoff_seconds


def test_503_forever_raises_download_error_naming_url(tmp_path):
    with serve_files({"a.txt": b"x"}) as srv:
        srv.faults["a.txt"] = ["503"] * 10
        with pytest.raises(DownloadError, match=f"{srv.url('a.txt')}.*HTTP 503"):
            download_source(
                "w", spec(srv.url("a.txt")), str(tmp_path / "o"), SETTINGS, str(tmp_path)
            )
        assert len(srv.gets("a.txt")) == SETTINGS["retries"] + 1


def test_404_names_the_url_and_is_not_retried(tmp_path):
    with serve_files({}) as srv:
        url = srv.url("missing.jsonl.gz")
        with pytest.raises(SourceError, match=f"{url}: HTTP 404") as err:
            download_source("w", spec(url), str(tmp_path / "o"), SETTINGS, str(tmp_path))
        assert not isinstance(err.value, DownloadError)
        assert len(srv.gets("missing.jsonl.gz")) == 1
    assert not (tmp_path / "o").exists()


def test_sha256_mismatch_fails_and_leaves_nothing(tmp_path):
    wrong = "0" * 64
    out = tmp_path / "raw" / "w"
    with serve_files({"a.txt": b"abc"}) as srv:
        with pytest.raises(SourceError, match=f"a.txt.*expected {wrong}, got {sha(b'abc')}"):
            download_source(
                "w", spec(srv.url("a.txt"), sha256=wrong), str(out), SETTINGS, str(tmp_path)
            )
        assert not out.exists()
        assert not list(
            (tmp_path / "raw").rglob("a.txt*")
        )  # the bad file is gone: the next run starts clean
        m = download_source(
            "w", spec(srv.url("a.txt"), sha256=sha(b"abc")), str(out), SETTINGS, str(tmp_path)
        )
        assert len(srv.gets("a.txt")) == 2 and srv.gets("a.txt")[1]["range"] is None
    assert m["files"][0]["sha256"] == sha(b"abc")


def test_sha256_mapping_by_file_name_over_a_url_list(tmp_path):
    files = {"x/a.txt": b"a", "y/b.txt": b"b"}
    with serve_files(files) as srv:
        uris = [srv.url("x/a.txt"), srv.url("y/b.txt")]
        m = download_source(
            "w",
            spec(uris, sha256={"a.txt": sha(b"a"), "b.txt": sha(b"b")}),
            str(tmp_path / "o"),
            SETTINGS,
            ".",
        )
        assert [f["path"] for f in m["files"]] == ["a.txt", "b.txt"]  # URL list order
        with pytest.raises(SourceError, match="sha256 key 'c.txt' names no file"):
            download_source(
                "w", spec(uris, sha256={"c.txt": sha(b"c")}), str(tmp_path / "p"), SETTINGS, "."
            )


# --- Hugging Face Hub ---------------------------------------------------------------------

HUB_FILES = {
    "README.md": b"# demo\n",
    "data/train.jsonl": b'{"text": "one"}\n{"text": "two"}\n',
    "data/test.jsonl": b'{"text": "three"}\n',
    "data/extra.parquet": b"PAR1 not really",
}


def run_in_fresh_process(
    env: dict, out: Path, uri: str, include: list[str]
) -> subprocess.CompletedProcess:
    """huggingface_hub reads HF_* at import, so the download runs in its own interpreter, as the rule does."""
    code = (
        "import json, sys; from cama.corpus.download import download_source; "
        "a = json.loads(sys.argv[1]); print(json.dumps(download_source(**a)))"
    )
    args = {
        "name": "hubsrc",
        "spec": spec(uri, include=include),
        "out_dir": str(out),
        "settings": {**SETTINGS, "retries": 0},
        "workdir": str(out.parent),
    }
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")} | env
    return subprocess.run(
        [sys.executable, "-c", code, json.dumps(args)],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_hub_dataset_download_then_offline_from_cache(tmp_path):
    env = {
        "HF_HOME": str(tmp_path / "hf_home"),
        "HF_HUB_CACHE": str(tmp_path / "hub_cache"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    }
    with serve_hub({"owner/demo": HUB_FILES}) as hub:
        env["HF_ENDPOINT"] = hub.endpoint
        out = tmp_path / "raw" / "hubsrc"
        r = run_in_fresh_process(env, out, "hf://datasets/owner/demo", ["*.jsonl"])
        assert r.returncode == 0, r.stderr
        commit = hub.commit("owner/demo")
        seen = {(m, p.split("?")[0]) for m, p in hub.requests}
    assert ("GET", "/api/datasets/owner/demo/revision/main") in seen
    assert ("GET", f"/datasets/owner/demo/resolve/{commit}/data/train.jsonl") in seen
    assert not any("README.md" in p or "parquet" in p for _, p in seen if "resolve" in p)

    m = json.loads(r.stdout)
    want = ["data/test.jsonl", "data/train.jsonl"]
    assert [f["path"] for f in m["files"]] == want
    for f in m["files"]:
        assert f["url"] == f"hf://datasets/owner/demo/{f['path']}"
        assert f["revision"] == commit
        assert f["size"] == len(HUB_FILES[f["path"]]) and f["sha256"] == sha(HUB_FILES[f["path"]])
        assert (out / f["path"]).read_bytes() == HUB_FILES[f["path"]]
    assert (tmp_path / "hub_cache" / "datasets--owner--demo").is_dir()  # HF_HUB_CACHE was honoured

    # the server is gone; offline, the warm cache alone gives the same files
    out2 = tmp_path / "raw2" / "hubsrc"
    r2 = run_in_fresh_process(
        {**env, "HF_HUB_OFFLINE": "1"}, out2, "hf://datasets/owner/demo", ["*.jsonl"]
    )
    assert r2.returncode == 0, r2.stderr
    assert json.loads(r2.stdout)["files"] == m["files"]
    assert (out2 / "data/train.jsonl").read_bytes() == HUB_FILES["data/train.jsonl"]


def test_hub_offline_with_cold_cache_is_a_clear_error(tmp_path):
    env = {
        "HF_HOME": str(tmp_path / "h"),
        "HF_HUB_CACHE": str(tmp_path / "c"),
        "HF_HUB_OFFLINE": "1",
    }
    r = run_in_fresh_process(env, tmp_path / "raw" / "hubsrc", "hf://datasets/owner/none", [])
    assert r.returncode != 0
    assert "DownloadError: source hubsrc: hf://datasets/owner/none (revision main)" in r.stderr
    assert not (tmp_path / "raw" / "hubsrc").exists()


def test_hub_missing_repo_is_a_source_error(tmp_path):
    env = {
        "HF_HOME": str(tmp_path / "h"),
        "HF_HUB_CACHE": str(tmp_path / "c"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    with serve_hub({"owner/demo": HUB_FILES}) as hub:
        env["HF_ENDPOINT"] = hub.endpoint
        r = run_in_fresh_process(env, tmp_path / "raw" / "hubsrc", "hf://datasets/owner/nope", [])
    assert r.returncode != 0
    assert (
        "SourceError: source hubsrc: hf://datasets/owner/nope (revision main): repository not found"
        in r.stderr
    )

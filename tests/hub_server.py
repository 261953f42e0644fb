"""A fake Hugging Face Hub on loopback: the HTTP API as huggingface_hub 2.4 uses it, to read and write.

Shared by the corpus tests (dataset downloads) and the publish tests (model upload and download).
The endpoints, as ``hf_api.py``, ``file_download.py``, ``_commit_api.py`` and ``lfs.py`` call them
(``{type}s`` is ``models`` or ``datasets``; a model repo's file URLs have no type prefix):

Read
- ``GET  /api/{type}s/{owner}/{name}[/revision/{rev}]``: repo info; ``sha`` is the head commit;
- ``GET  /api/{type}s/{owner}/{name}/tree/{rev}[/{path}]?recursive=...``: the listing (``type``,
  ``path``, ``size``, ``oid``; LFS files add ``lfs: {oid: sha256, size, pointerSize}``), one page;
- ``HEAD|GET [/datasets]/{owner}/{name}/resolve/{rev}/{path}``: the file, with ``X-Repo-Commit``,
  ``ETag`` (the git blob sha1 for a regular file; the sha256 for an LFS file, also as
  ``X-Linked-Etag``/``X-Linked-Size``, as the Hub sends it) and ``Content-Length``. A ``Range:
  bytes=N-`` request gets ``206 Partial Content``: that is how an interrupted download resumes.

Write (every call needs ``Authorization: Bearer <token>`` when the hub has a token)
- ``POST /api/repos/create``: ``{name, organization, type, visibility}``; 409 if it exists;
- ``POST /api/validate-yaml``: the model card's front matter must parse as a YAML mapping;
- ``POST /api/{type}s/{repo}/preupload/{rev}``: per file, ``uploadMode`` ``lfs`` (weights,
  binaries, files of 10 MB or more, as the Hub's .gitattributes decides) or ``regular``, and the
  ``oid`` the repo already has at that path;
- ``POST /{repo}.git/info/lfs/objects/batch``: the git-LFS batch API, ``basic`` transfer: an
  ``upload`` action (a ``PUT`` here) and a ``verify`` action, or no action for an object the
  server already has;
- ``PUT /lfs/{oid}?sig=...``: the object, to a pre-signed URL (no token: the signature is the
  credential, as with the Hub's storage); its sha256 must be its oid; ``POST /lfs/{oid}/verify``;
- ``POST /api/{type}s/{repo}/commit/{rev}``: ndjson (``header``, ``file`` base64, ``lfsFile``,
  ``deletedFile``); every ``lfsFile`` must have been uploaded; the result is a new commit.

Not faked: the Xet storage protocol (CAS). huggingface_hub uses it when ``hf_xet`` is installed,
so tests that upload set ``HF_HUB_DISABLE_XET=1``, and the client takes the LFS route above,
which the Hub also serves. Downloads take plain HTTP because no ``X-Xet-Hash`` header is sent.

Faults: ``hub.stall[path] = n`` makes the next GET of ``path`` send its headers and first ``n``
bytes, then hang until ``hub.release`` is set (a process to kill mid-file); ``hub.drop[path] =
n`` sends ``n`` bytes and then drops the connection (a network failure); ``hub.corrupt[path] =
bytes`` serves other bytes than the listing says. Errors carry ``X-Error-Code``
(RepoNotFound, RevisionNotFound, EntryNotFound), which the client maps to its exceptions.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

LFS_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.model", "*.gz", "*.zst", "*.parquet", "*.arrow")
LFS_MIN_SIZE = 10 * 1024 * 1024


def _sign(oid: str) -> str:
    return hashlib.sha256(f"fake-hub-storage:{oid}".encode()).hexdigest()[:32]


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def is_lfs(path: str, size: int, sample: bytes = b"") -> bool:
    return size >= LFS_MIN_SIZE or b"\0" in sample or any(fnmatch.fnmatch(path, p) for p in LFS_PATTERNS)


@dataclass
class Repo:
    files: dict[str, bytes]
    lfs: set[str] = field(default_factory=set)  # paths stored as LFS objects
    private: bool = False
    commits: list[str] = field(default_factory=list)  # oldest first; the head is last

    def head(self) -> str:
        if not self.commits:  # a stable id derived from the content, like a real commit's
            h = hashlib.sha1()
            for path in sorted(self.files):
                h.update(path.encode() + git_blob_sha1(self.files[path]).encode())
            self.commits.append(h.hexdigest())
        return self.commits[-1]


@dataclass
class FakeHub:
    """Repos by (type, "owner/name"). Dataset repos given at start get one commit on ``main``."""

    repos: dict[tuple[str, str], Repo]
    token: str | None = None  # when set, writes (and reads of private repos) need it
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    auth_seen: list[str] = field(default_factory=list)  # Authorization headers received
    ranges: list[tuple[str, str]] = field(default_factory=list)  # (path, Range header) of ranged GETs
    objects: dict[str, bytes] = field(default_factory=dict)  # LFS store, by sha256
    stall: dict[str, int] = field(default_factory=dict)
    drop: dict[str, int] = field(default_factory=dict)
    corrupt: dict[str, bytes] = field(default_factory=dict)
    release: threading.Event = field(default_factory=threading.Event)
    endpoint: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def repo(self, repo_id: str, repo_type: str = "dataset") -> Repo:
        return self.repos[(repo_type, repo_id)]

    def commit(self, repo_id: str, repo_type: str = "dataset") -> str:
        return self.repo(repo_id, repo_type).head()

    def resolve_rev(self, repo: Repo, rev: str) -> str | None:
        head = repo.head()
        return head if rev in ("main", *repo.commits) else None


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        # ------------------------------------------------------------------ dispatch
        def do_HEAD(self) -> None:
            self._read_route(body=False)

        def do_GET(self) -> None:
            self._read_route(body=True)

        def do_POST(self) -> None:
            self._write_route()

        def do_PUT(self) -> None:
            self._write_route()

        def _path(self) -> tuple[str, list[str]]:
            path = unquote(urlsplit(self.path).path)
            with hub.lock:
                hub.requests.append((self.command, path))
                if self.headers.get("Authorization"):
                    hub.auth_seen.append(self.headers["Authorization"])
            return path, path.strip("/").split("/")

        def _authorised(self) -> bool:
            return hub.token is None or self.headers.get("Authorization") == f"Bearer {hub.token}"

        def _read_route(self, body: bool) -> None:
            _, parts = self._path()
            if parts[:1] == ["api"] and len(parts) == 4 and parts[1] in ("datasets", "models"):
                return self._api(parts[1][:-1], f"{parts[2]}/{parts[3]}", "revision", "main", "")
            if parts[:1] == ["api"] and len(parts) >= 6 and parts[1] in ("datasets", "models"):
                return self._api(parts[1][:-1], f"{parts[2]}/{parts[3]}", parts[4], parts[5], "/".join(parts[6:]))
            if parts[:1] == ["datasets"] and len(parts) >= 6 and parts[3] == "resolve":
                return self._resolve("dataset", f"{parts[1]}/{parts[2]}", parts[4], "/".join(parts[5:]), body)
            if len(parts) >= 5 and parts[2] == "resolve":
                return self._resolve("model", f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:]), body)
            self._error(404, "EntryNotFound")

        def _write_route(self) -> None:
            path, parts = self._path()
            data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if path == "/api/validate-yaml":
                return self._validate_yaml(data)
            if parts[:1] == ["lfs"] and len(parts) == 2 and self.command == "PUT":
                # a pre-signed URL, as the Hub's storage hands out: the signature is the credential
                if parse_qs(urlsplit(self.path).query).get("sig") != [_sign(parts[1])]:
                    return self._error(403, "SignatureDoesNotMatch")
                return self._lfs_put(parts[1], data)
            if not self._authorised():
                return self._error(401, "Unauthorized", message="Invalid credentials in Authorization header")
            if path == "/api/repos/create":
                return self._create(json.loads(data))
            if parts[:1] == ["lfs"] and len(parts) == 3 and parts[2] == "verify":
                return self._json({"ok": parts[1] in hub.objects}, 200 if parts[1] in hub.objects else 404)
            m = re.fullmatch(r"/(?:(datasets)/)?([^/]+/[^/]+)\.git/info/lfs/objects/batch", path)
            if m:
                return self._lfs_batch(json.loads(data))
            if parts[:1] == ["api"] and len(parts) >= 6 and parts[1] in ("datasets", "models"):
                repo_type, repo_id, what, rev = parts[1][:-1], f"{parts[2]}/{parts[3]}", parts[4], parts[5]
                key = (repo_type, repo_id)
                if key not in hub.repos:
                    return self._error(404, "RepoNotFound")
                if what == "preupload":
                    return self._preupload(hub.repos[key], json.loads(data))
                if what == "commit":
                    return self._commit(hub.repos[key], repo_type, repo_id, rev, data)
            self._error(404, "EntryNotFound")

        # ------------------------------------------------------------------ read
        def _find(self, repo_type: str, repo_id: str, rev: str) -> tuple[Repo, str] | None:
            """The repo and the commit ``rev`` names, or None after answering with the error."""
            repo = hub.repos.get((repo_type, repo_id))
            if repo is None or (repo.private and not self._authorised()):
                self._error(404 if repo is None else 401, "RepoNotFound")
                return None
            commit = hub.resolve_rev(repo, rev)
            if commit is None:
                self._error(404, "RevisionNotFound")
                return None
            return repo, commit

        def _api(self, repo_type: str, repo_id: str, what: str, rev: str, sub: str) -> None:
            found = self._find(repo_type, repo_id, rev)
            if found is None:
                return
            repo, commit = found
            if what == "revision":
                info = {
                    "id": repo_id,
                    "sha": commit,
                    "private": repo.private,
                    "siblings": [{"rfilename": p} for p in sorted(repo.files)],
                }
                return self._json(info)
            if what == "tree":
                return self._json(_tree(repo, sub))
            self._error(404, "EntryNotFound")

        def _resolve(self, repo_type: str, repo_id: str, rev: str, file: str, body: bool) -> None:
            found = self._find(repo_type, repo_id, rev)
            if found is None:
                return
            repo, commit = found
            data = repo.files.get(file)
            if data is None:
                return self._error(404, "EntryNotFound", commit)
            etag = hashlib.sha256(data).hexdigest() if file in repo.lfs else git_blob_sha1(data)
            data = hub.corrupt.get(file, data)
            start = 0
            m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
            if m and body:
                start = int(m.group(1))
                hub.ranges.append((file, self.headers["Range"]))
            self.send_response(206 if start else 200)
            self.send_header("X-Repo-Commit", commit)
            self.send_header("ETag", f'"{etag}"')
            if file in repo.lfs:
                self.send_header("X-Linked-Etag", f'"{etag}"')
                self.send_header("X-Linked-Size", str(len(data)))
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(len(data) - start))
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            if not body:
                return
            cut = hub.stall.pop(file, None)
            if cut is not None:  # send a part, then hang: the client is killed mid-file
                self.wfile.write(data[start : start + cut])
                self.wfile.flush()
                hub.release.wait(60)
                self.close_connection = True
                return
            cut = hub.drop.pop(file, None)
            if cut is not None:  # send a part, then drop the connection: a network failure
                self.wfile.write(data[start : start + cut])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            self.wfile.write(data[start:])

        # ------------------------------------------------------------------ write
        def _validate_yaml(self, data: bytes) -> None:
            content = json.loads(data)["content"]
            m = re.match(r"^---\n(.*?)\n---\n", content, re.DOTALL)
            try:
                meta = yaml.safe_load(m.group(1)) if m else {}
                ok = isinstance(meta, dict)
            except yaml.YAMLError:
                ok = False
            if not ok:
                return self._json({"errors": [{"message": "metadata is not a YAML mapping"}]}, 400)
            self._json({"errors": [], "warnings": []})

        def _create(self, req: dict) -> None:
            repo_type = req.get("type") or "model"
            repo_id = f"{req.get('organization')}/{req['name']}"
            if (repo_type, repo_id) in hub.repos:
                return self._error(409, "RepoExists", message="You already created this model repo")
            hub.repos[(repo_type, repo_id)] = Repo(files={}, private=req.get("visibility") == "private", commits=["0" * 40])
            prefix = "" if repo_type == "model" else f"{repo_type}s/"
            self._json({"url": f"{hub.endpoint}/{prefix}{repo_id}", "name": repo_id})

        def _preupload(self, repo: Repo, req: dict) -> None:
            files = []
            for f in req["files"]:
                sample = base64.b64decode(f["sample"])
                lfs = is_lfs(f["path"], f["size"], sample)
                have = repo.files.get(f["path"])
                oid = None
                if have is not None:
                    oid = hashlib.sha256(have).hexdigest() if f["path"] in repo.lfs else git_blob_sha1(have)
                files.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid})
            self._json({"files": files, "commitOid": repo.head()})

        def _lfs_batch(self, req: dict) -> None:
            objects = []
            for o in req["objects"]:
                entry = {"oid": o["oid"], "size": o["size"], "authenticated": True}
                if o["oid"] not in hub.objects:
                    entry["actions"] = {
                        "upload": {"href": f"{hub.endpoint}/lfs/{o['oid']}?sig={_sign(o['oid'])}"},
                        "verify": {"href": f"{hub.endpoint}/lfs/{o['oid']}/verify"},
                    }
                objects.append(entry)
            self._json({"transfer": "basic", "objects": objects, "hash_algo": "sha256"})

        def _lfs_put(self, oid: str, data: bytes) -> None:
            if hashlib.sha256(data).hexdigest() != oid:
                return self._json({"error": "sha256 mismatch"}, 400)
            hub.objects[oid] = data
            self._json({})

        def _commit(self, repo: Repo, repo_type: str, repo_id: str, rev: str, data: bytes) -> None:
            if rev != "main":
                return self._error(404, "RevisionNotFound")
            files, lfs = dict(repo.files), set(repo.lfs)
            for line in data.decode().splitlines():
                item = json.loads(line)
                key, value = item["key"], item["value"]
                if key == "file":
                    files[value["path"]] = base64.b64decode(value["content"])
                    lfs.discard(value["path"])
                elif key == "lfsFile":
                    if value["oid"] not in hub.objects:
                        return self._json({"error": f"LFS object {value['oid']} was never uploaded"}, 422)
                    files[value["path"]] = hub.objects[value["oid"]]
                    lfs.add(value["path"])
                elif key == "deletedFile":
                    files.pop(value["path"], None)
                    lfs.discard(value["path"])
            repo.files, repo.lfs = files, lfs
            h = hashlib.sha1(repo.head().encode())
            for path in sorted(files):
                h.update(path.encode() + git_blob_sha1(files[path]).encode())
            repo.commits.append(h.hexdigest())
            prefix = "" if repo_type == "model" else f"{repo_type}s/"
            self._json({"commitUrl": f"{hub.endpoint}/{prefix}{repo_id}/commit/{repo.head()}", "commitOid": repo.head()})

        # ------------------------------------------------------------------ replies
        def _json(self, obj, status: int = 200) -> None:
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _error(self, status: int, code: str, commit: str | None = None, message: str = "") -> None:
            data = json.dumps({"error": message or code}).encode()
            self.send_response(status)
            self.send_header("X-Error-Code", code)
            if message:
                self.send_header("X-Error-Message", message)
            if commit:
                self.send_header("X-Repo-Commit", commit)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

    return Handler


def _tree(repo: Repo, sub: str) -> list[dict]:
    """The recursive listing under ``sub``: folders, then files, as the Hub returns them."""
    prefix = f"{sub.strip('/')}/" if sub.strip("/") else ""
    chosen = sorted(p for p in repo.files if p.startswith(prefix))
    folders = sorted({p.rsplit("/", i)[0] for p in chosen for i in range(1, p.count("/") + 1)})
    entries = [
        {"type": "directory", "path": d, "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0}
        for d in folders
    ]
    for p in chosen:
        data = repo.files[p]
        entry = {"type": "file", "path": p, "size": len(data), "oid": git_blob_sha1(data)}
        if p in repo.lfs:
            sha = hashlib.sha256(data).hexdigest()
            pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {len(data)}\n".encode()
            entry.update(oid=git_blob_sha1(pointer), lfs={"oid": sha, "size": len(data), "pointerSize": len(pointer)})
        entries.append(entry)
    return entries


@contextmanager
def serve_hub(
    datasets: dict[str, dict[str, bytes]] | None = None,
    *,
    models: dict[str, dict[str, bytes]] | None = None,
    token: str | None = None,
) -> Iterator[FakeHub]:
    """Run a FakeHub on 127.0.0.1 on a free port; ``hub.endpoint`` is its HF_ENDPOINT."""
    repos = {("dataset", k): Repo(files=dict(v)) for k, v in (datasets or {}).items()}
    for k, v in (models or {}).items():
        repos[("model", k)] = Repo(files=dict(v), lfs={p for p, d in v.items() if is_lfs(p, len(d), d[:512])})
    hub = FakeHub(repos=repos, token=token)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    server.daemon_threads = True
    hub.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        hub.release.set()
        server.shutdown()
        server.server_close()


__all__ = ["FakeHub", "Repo", "git_blob_sha1", "serve_hub"]

"""A fake Hugging Face Hub on loopback, enough of the protocol for huggingface_hub's snapshot_download.

The endpoints, as huggingface_hub 2.4 calls them (``hf_api.py``, ``file_download.py``):

- ``GET  /api/datasets/{owner}/{name}/revision/{rev}``: repo info; ``sha`` is the commit;
- ``GET  /api/datasets/{owner}/{name}/tree/{rev}[/{path}]?recursive=...``: the file listing
  (``type``, ``path``, ``size``, ``oid``), one page (no ``Link`` header);
- ``HEAD|GET /datasets/{owner}/{name}/resolve/{rev}/{path}``: the file, with ``X-Repo-Commit``,
  ``ETag`` (the git blob sha1, as the Hub gives for non-LFS files) and ``Content-Length``.

Errors carry ``X-Error-Code`` (RepoNotFound, RevisionNotFound, EntryNotFound), which the
client maps to its exception classes.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class FakeHub:
    """Dataset repos {"owner/name": {path: bytes}}, each with one commit on branch main."""

    repos: dict[str, dict[str, bytes]]
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    endpoint: str = ""

    def commit(self, repo_id: str) -> str:
        # a stable 40-hex commit id derived from the content, like a real commit would be
        h = hashlib.sha1(repo_id.encode())
        for path in sorted(self.repos[repo_id]):
            h.update(path.encode() + git_blob_sha1(self.repos[repo_id][path]).encode())
        return h.hexdigest()

    def resolve_rev(self, repo_id: str, rev: str) -> str | None:
        commit = self.commit(repo_id)
        return commit if rev in ("main", commit) else None


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def do_GET(self) -> None:
            self._serve(body=True)

        def _serve(self, body: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            hub.requests.append((self.command, path))
            parts = path.strip("/").split("/")
            if parts[:2] == ["api", "datasets"] and len(parts) >= 6:
                return self._api(f"{parts[2]}/{parts[3]}", parts[4], parts[5], "/".join(parts[6:]))
            if parts[:1] == ["datasets"] and len(parts) >= 6 and parts[3] == "resolve":
                return self._resolve(f"{parts[1]}/{parts[2]}", parts[4], "/".join(parts[5:]), body)
            self._error(404, "EntryNotFound")

        def _api(self, repo_id: str, what: str, rev: str, sub: str) -> None:
            if repo_id not in hub.repos:
                return self._error(404, "RepoNotFound")
            commit = hub.resolve_rev(repo_id, rev)
            if commit is None:
                return self._error(404, "RevisionNotFound")
            files = hub.repos[repo_id]
            if what == "revision":
                info = {
                    "id": repo_id,
                    "sha": commit,
                    "private": False,
                    "siblings": [{"rfilename": p} for p in sorted(files)],
                }
                return self._json(info)
            if what == "tree":
                return self._json(_tree(files, sub))
            self._error(404, "EntryNotFound")

        def _resolve(self, repo_id: str, rev: str, file: str, body: bool) -> None:
            if repo_id not in hub.repos:
                return self._error(404, "RepoNotFound")
            commit = hub.resolve_rev(repo_id, rev)
            if commit is None:
                return self._error(404, "RevisionNotFound")
            data = hub.repos[repo_id].get(file)
            if data is None:
                return self._error(404, "EntryNotFound", commit)
            self.send_response(200)
            self.send_header("X-Repo-Commit", commit)
            self.send_header("ETag", f'"{git_blob_sha1(data)}"')
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            if body:
                self.wfile.write(data)

        def _json(self, obj) -> None:
            data = json.dumps(obj).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _error(self, status: int, code: str, commit: str | None = None) -> None:
            self.send_response(status)
            self.send_header("X-Error-Code", code)
            if commit:
                self.send_header("X-Repo-Commit", commit)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


def _tree(files: dict[str, bytes], sub: str) -> list[dict]:
    """The recursive listing under ``sub``: folders, then files, as the Hub returns them."""
    prefix = f"{sub.strip('/')}/" if sub.strip("/") else ""
    chosen = sorted(p for p in files if p.startswith(prefix))
    folders = sorted({p.rsplit("/", i)[0] for p in chosen for i in range(1, p.count("/") + 1)})
    entries = [
        {"type": "directory", "path": d, "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0}
        for d in folders
    ]
    entries += [
        {"type": "file", "path": p, "size": len(files[p]), "oid": git_blob_sha1(files[p])}
        for p in chosen
    ]
    return entries


@contextmanager
def serve_hub(repos: dict[str, dict[str, bytes]]) -> Iterator[FakeHub]:
    """Run a FakeHub on 127.0.0.1 on a free port; ``hub.endpoint`` is its HF_ENDPOINT."""
    hub = FakeHub(repos=repos)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    server.daemon_threads = True
    hub.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()

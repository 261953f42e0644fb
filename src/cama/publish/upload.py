"""``cama publish --repo-id ORG/NAME [--dry-run]``: upload the hub-ready folder with huggingface_hub.

- The token comes from ``HF_TOKEN`` in the environment, and from nowhere else (not a file, not
  the command line, not huggingface_hub's stored login). It is handed to ``HfApi`` and never
  printed or logged; errors from the Hub are re-raised without the request headers.
- Before anything, the folder is checked against its ``SHA256SUMS``: a damaged folder is not
  uploaded.
- ``--dry-run`` prints the plan: each file with its size and whether the repo already has it
  (by its LFS sha256, or its git blob id for small files), and the repo's state. It needs no
  token for a public repo.
- The upload is ``create_repo(exist_ok=True)`` then ``upload_folder``, one commit; afterwards
  the repo's listing is compared with the folder, file by file.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
from pathlib import Path

from cama.io import write_json
from cama.publish.errors import HubError, MissingFileError
from cama.publish.folder import list_files, read_sums, verify_sums

log = logging.getLogger(__name__)

TOKEN_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


def hub_token(required: bool) -> str | bool:
    """The token from the environment, or ``False`` (which tells huggingface_hub to send none)."""
    token = next((os.environ[v] for v in TOKEN_VARS if os.environ.get(v)), None)
    if required and not token:
        raise HubError(
            "no Hub token: set HF_TOKEN in the environment to a write token "
            "(https://huggingface.co/settings/tokens); cama reads it from nowhere else"
        )
    return token or False


def git_blob_sha1(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _hub_call(what: str, fn, *args, **kwargs):
    """Run a huggingface_hub call; turn its errors into a ``HubError`` that names the call."""
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    try:
        return fn(*args, **kwargs)
    except RepositoryNotFoundError:
        raise
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else "?"
        server = getattr(e, "server_message", None) or ""
        raise HubError(f"{what}: the Hub answered {status} {server}".strip()) from None


def remote_files(api, repo_id: str, revision: str | None) -> tuple[str | None, dict]:
    """(head commit or None if the repo does not exist, {path: RepoFile})."""
    from huggingface_hub import RepoFile
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    try:
        info = _hub_call(f"repo info of {repo_id}", api.repo_info, repo_id, revision=revision)
        tree = _hub_call(f"listing {repo_id}", api.list_repo_tree, repo_id, recursive=True, revision=info.sha)
    except (RepositoryNotFoundError, RevisionNotFoundError):
        return None, {}
    return info.sha, {f.path: f for f in tree if isinstance(f, RepoFile)}


def plan(folder: Path, remote: dict) -> list[dict]:
    """Each local file with its size and status: new, changed or unchanged; remote-only files last."""
    sums = read_sums(folder)
    rows = []
    for rel in list_files(folder):
        path, size = folder / rel, (folder / rel).stat().st_size
        r = remote.get(rel)
        if r is None:
            status = "new"
        elif r.lfs is not None:
            status = "unchanged" if r.lfs.sha256 == sums.get(rel) else "changed"
        else:
            status = "unchanged" if r.blob_id == git_blob_sha1(path) else "changed"
        rows.append({"path": rel, "size": size, "status": status})
    rows += [{"path": p, "size": r.size, "status": "remote only (kept)"} for p, r in sorted(remote.items()) if p not in sums and p != "SHA256SUMS"]
    return rows


def format_plan(repo_id: str, head: str | None, rows: list[dict], private: bool) -> str:
    state = f"exists, at commit {head}" if head else f"does not exist: it will be created ({'private' if private else 'public'})"
    lines = [f"repo {repo_id} (model): {state}", f"{'status':<20} {'size':>12}  path"]
    lines += [f"{r['status']:<20} {_size(r['size']):>12}  {r['path']}" for r in rows]
    send = [r for r in rows if r["status"] in ("new", "changed")]
    lines.append(f"{len(send)} file(s), {_size(sum(r['size'] for r in send))} to upload; {sum(r['status'] == 'unchanged' for r in rows)} unchanged")
    return "\n".join(lines)


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def publish(
    *,
    folder: str | os.PathLike,
    repo_id: str,
    dry_run: bool = False,
    private: bool = True,
    revision: str | None = None,
    commit_message: str = "cama publish",
    record: str | os.PathLike | None = None,
) -> dict:
    """Upload ``folder`` to ``repo_id`` (or print the plan); return what was done."""
    from huggingface_hub import HfApi

    folder = Path(folder)
    if not (folder / "README.md").is_file():
        raise MissingFileError(f"{folder}: no README.md; not a folder made by the publish stage")
    n = verify_sums(folder)
    log.info("%s: %d files match SHA256SUMS", folder, n)
    api = HfApi(token=hub_token(required=not dry_run))
    head, remote = remote_files(api, repo_id, revision)
    rows = plan(folder, remote)
    print(format_plan(repo_id, head, rows, private))
    result = {"repo_id": repo_id, "dry_run": dry_run, "plan": rows, "head_before": head}
    if not dry_run:
        _hub_call(f"creating {repo_id}", api.create_repo, repo_id, private=private, exist_ok=True)
        info = _hub_call(
            f"uploading {folder} to {repo_id}", api.upload_folder,
            repo_id=repo_id, folder_path=str(folder), revision=revision, commit_message=commit_message,
        )  # fmt: skip
        head, remote = remote_files(api, repo_id, revision)
        wrong = [r["path"] for r in plan(folder, remote) if r["status"] not in ("unchanged", "remote only (kept)")]
        if wrong:
            raise HubError(f"{repo_id}: after the upload, {len(wrong)} file(s) differ on the Hub, e.g. {wrong[0]}")
        result.update(commit=info.oid, url=info.commit_url, verified=len(rows))
        print(f"uploaded to {repo_id} at commit {info.oid}; all {len(rows)} files verified on the Hub")
    if record:
        write_json(record, result)
    return result


# ----------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo-id", required=True, help="ORG/NAME on the Hub (HF_ENDPOINT picks another Hub)")
    parser.add_argument("--folder", default="results/publish", help="the hub-ready folder (default results/publish)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan (files, sizes, what the repo has); upload nothing")
    parser.add_argument("--public", action="store_true", help="create the repo public (default private)")
    parser.add_argument("--revision", default=None, help="branch to commit to (default main)")
    parser.add_argument("--record", default=None, help="write what was done here (JSON)")


def run(args: argparse.Namespace) -> int:
    publish(folder=args.folder, repo_id=args.repo_id, dry_run=args.dry_run, private=not args.public,
            revision=args.revision, record=args.record)  # fmt: skip
    return 0

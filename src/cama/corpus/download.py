"""Corpus stage 1: fetch one source's files into ``results/raw/{source}/`` with a manifest.

Files are kept as they are (compressed files stay compressed); the reader stage
decompresses and parses them in manifest order.

Output::

    raw/{source}/
        <files>              # basename for URLs, path under the glob base for globs, repo path for hub
        manifest.json        # {"source", "uris", "files": [{"path", "url", "size", "sha256"}, ...], "total_bytes"}

``url`` is the origin: the URL, the absolute local path, or ``hf://datasets/<owner>/<name>/<path>``
(hub files also carry ``revision``, the commit they came from). Files are listed
in uri order, and within a uri in sorted order.

Atomicity: everything is built in a hidden sibling folder and renamed onto
``out_dir`` at the end, so an interrupted run leaves no ``out_dir``. HTTP bodies
are the exception: they are written to ``<parent>/.partial/{source}/<file>.part``,
a folder the rule does not declare, so an interrupted download resumes with a
Range request on the next run. The folder is removed once the source is complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import requests
import urllib3

from cama.corpus.sources import (
    HubRepo,
    UriKind,
    as_uri_list,
    classify_uri,
    expand_path,
    local_matches,
    parse_hub_uri,
    url_filename,
)
from cama.errors import DownloadError, SourceError
from cama.io import write_json
from cama.logs import progress

logger = logging.getLogger("cama.corpus.download")

MANIFEST = "manifest.json"
CHUNK_BYTES = 1 << 20
PROGRESS_MIN_BYTES = 16 << 20  # smaller files get a log line, not a bar
RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


@dataclass
class FileEntry:
    """One file of the manifest."""

    path: str  # relative to out_dir, posix
    url: str  # origin: URL, absolute local path, or hf:// uri
    size: int
    sha256: str
    extra: dict = field(default_factory=dict)  # e.g. the hub commit

    def to_json(self) -> dict:
        return {
            "path": self.path,
            "url": self.url,
            "size": self.size,
            "sha256": self.sha256,
            **self.extra,
        }


class _Transient(Exception):
    """A failure worth retrying (5xx, truncated body, dropped connection)."""


def download_source(name: str, spec: dict, out_dir: str, settings: dict, workdir: str) -> dict:
    """Fetch every uri of source ``name`` into ``out_dir`` and write its manifest; return the manifest.

    Raises ``SourceError`` (missing path, 404, checksum mismatch, name clash) or
    ``DownloadError`` (network failure after all retries), each naming the path or URL.
    """
    from cama.config import validate_section

    settings = validate_section("download", settings)  # the schema's defaults for missing keys
    spec = validate_section("sources", {name: spec})[name]
    out = Path(out_dir).absolute()
    partial = out.parent / ".partial" / name
    staging = out.parent / f".{out.name}.tmp-{os.getpid()}"
    uris = as_uri_list(spec["uri"])
    logger.info("source %s: %d uri(s) -> %s", name, len(uris), out)
    with _staging_dir(staging):
        files: list[FileEntry] = []
        taken: dict[str, str] = {MANIFEST: "<the manifest>"}
        for uri in uris:
            files += _fetch_uri(name, uri, spec, settings, workdir, staging, partial, taken)
        if not files:
            raise SourceError(f"source {name}: no files in {uris}")
        check_sha256(name, files, spec.get("sha256"))
        manifest = {
            "source": name,
            "uris": uris,
            "files": [f.to_json() for f in files],
            "total_bytes": sum(f.size for f in files),
        }
        write_json(staging / MANIFEST, manifest)
        _replace_dir(staging, out)
    shutil.rmtree(partial, ignore_errors=True)
    with contextlib.suppress(OSError):
        partial.parent.rmdir()  # only if no other source is mid-download
    logger.info("source %s: %d files, %d bytes", name, len(files), manifest["total_bytes"])
    return manifest


# --- the whole output folder --------------------------------------------------------------


@contextlib.contextmanager
def _staging_dir(staging: Path) -> Iterator[Path]:
    """A fresh temporary folder, removed unless the block renamed it away.

    Leftovers of killed runs (``kill -9`` skips the cleanup) are removed first.
    """
    for stale in staging.parent.glob(staging.name.rsplit("-", 1)[0] + "-*"):
        shutil.rmtree(stale, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _replace_dir(src: Path, dst: Path) -> None:
    """Rename ``src`` onto ``dst``; an old ``dst`` is moved aside first (rename cannot replace a full folder)."""
    old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
    if dst.exists() or dst.is_symlink():
        os.replace(dst, old)
    os.replace(src, dst)
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    elif old.exists() or old.is_symlink():
        old.unlink()


def _claim(taken: dict[str, str], rel: str, origin: str, name: str) -> None:
    """Register that ``rel`` comes from ``origin``; two origins for one name is an error."""
    if rel in taken:
        raise SourceError(
            f"source {name}: two files would both be saved as {rel!r}: {taken[rel]} and {origin}; "
            "list them as separate sources or rename one"
        )
    taken[rel] = origin


def _fetch_uri(
    name: str,
    uri: str,
    spec: dict,
    settings: dict,
    workdir: str,
    staging: Path,
    partial: Path,
    taken: dict[str, str],
) -> list[FileEntry]:
    kind = classify_uri(uri)
    if kind is UriKind.HTTP:
        return [fetch_url(name, uri, staging, partial, settings, taken)]
    if kind is UriKind.HUB:
        return fetch_hub(name, parse_hub_uri(uri), spec, staging, settings, taken)
    return fetch_local(name, uri, spec["include"], staging, workdir, settings, taken)


# --- local paths and globs ----------------------------------------------------------------


def fetch_local(
    name: str,
    uri: str,
    include: list[str],
    staging: Path,
    workdir: str,
    settings: dict,
    taken: dict[str, str],
) -> list[FileEntry]:
    """Copy (or link, with ``link_local``) the files a local path or glob names."""
    path = expand_path(uri, workdir)
    matches = local_matches(path, include)
    if not matches:
        hint = " (an environment variable in it is not set)" if "$" in str(path) else ""
        what = f" matching include {include}" if include else ""
        raise SourceError(f"source {name}: no file{what} at {path}{hint} (uri {uri!r})")
    entries = []
    for file, rel in matches:
        _claim(taken, rel, str(file), name)
        dest = staging / rel
        place_file(file, dest, link=settings["link_local"])
        entries.append(FileEntry(rel, str(file), dest.stat().st_size, file_sha256(dest)))
    logger.info("source %s: %s -> %d file(s)", name, uri, len(entries))
    return entries


def place_file(src: Path, dest: Path, link: bool = False) -> None:
    """Copy ``src`` to ``dest``; with ``link``, hard-link it, or symlink it across file systems."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if link:
        try:
            os.link(src, dest)
            return
        except OSError:  # another file system, or links not allowed
            os.symlink(Path(src).resolve(), dest)
            return
    shutil.copyfile(src, dest)


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            h.update(chunk)
    return h.hexdigest()


# --- checksums ----------------------------------------------------------------------------


def expected_sha256(name: str, files: list[FileEntry], sha: str | dict | None) -> dict[str, str]:
    """Map manifest path → expected sha256 from the spec's ``sha256`` (a string or {file name: sha})."""
    if not sha:
        return {}
    if isinstance(sha, str):
        if len(files) != 1:
            raise SourceError(
                f"source {name}: sha256 is one string but the source has {len(files)} files; "
                "give a mapping {file name: sha256}"
            )
        return {files[0].path: sha}
    wanted = {}
    for key, value in sha.items():
        # a key is the manifest path, or a file name when that is unambiguous
        hits = [f.path for f in files if f.path == key] or [
            f.path for f in files if Path(f.path).name == key
        ]
        if len(hits) != 1:
            problem = "names no file" if not hits else f"names {len(hits)} files"
            raise SourceError(
                f"source {name}: sha256 key {key!r} {problem} of {[f.path for f in files]}"
            )
        wanted[hits[0]] = value
    return wanted


def check_sha256(name: str, files: list[FileEntry], sha: str | dict | None) -> None:
    """Compare each file with its expected hash; a mismatch is a SourceError naming file, expected and got."""
    wanted = expected_sha256(name, files, sha)
    for f in files:
        want = wanted.get(f.path)
        if want and want != f.sha256:
            raise SourceError(
                f"source {name}: sha256 mismatch for {f.path} ({f.url}): expected {want}, got {f.sha256}"
            )


# --- HTTP ---------------------------------------------------------------------------------


def fetch_url(
    name: str, url: str, staging: Path, partial: Path, settings: dict, taken: dict[str, str]
) -> FileEntry:
    """Download one URL (resuming a partial download) and move it into the staging folder."""
    rel = url_filename(url)
    _claim(taken, rel, url, name)
    part = partial / f"{rel}.part"
    done = download_with_retries(url, part, settings)
    sha = file_sha256(done)
    dest = staging / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(done, dest)
    return FileEntry(rel, url, dest.stat().st_size, sha)


def download_with_retries(
    url: str, part: Path, settings: dict, sleep: Callable[[float], None] = time.sleep
) -> Path:
    """Fetch ``url`` into ``part``, retrying transient failures with exponential back-off.

    The bytes already in ``part`` survive every failure, so each retry (and the next
    run) asks only for the rest. Returns ``part`` complete.
    """
    retries = int(settings["retries"])
    backoff = float(settings["backoff_seconds"])
    timeout = float(settings["timeout_seconds"])
    part.parent.mkdir(parents=True, exist_ok=True)
    with requests.Session() as session:
        for attempt in range(retries + 1):
            try:
                fetch_once(session, url, part, timeout)
                return part
            except (
                _Transient,
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
            ) as e:
                # all of these leave the bytes that arrived in `part`: the next try resumes there
                error = e
            if attempt == retries:
                break
            delay = backoff * 2**attempt
            logger.warning("%s: %s; retry %d/%d in %.1fs", url, error, attempt + 1, retries, delay)
            sleep(delay)
    raise DownloadError(f"{url}: download failed after {retries + 1} attempt(s): {error}")


_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


def fetch_once(session: requests.Session, url: str, part: Path, timeout: float) -> None:
    """One request: append the missing bytes of ``url`` to ``part``.

    Raises ``_Transient`` for what a retry may fix and ``SourceError`` for what it will not.
    """
    have = part.stat().st_size if part.exists() else 0
    headers = (
        {"Range": f"bytes={have}-", "Accept-Encoding": "identity"}
        if have
        else {"Accept-Encoding": "identity"}
    )
    with session.get(url, headers=headers, stream=True, timeout=timeout) as r:
        if r.status_code == 416 and have:
            # our part is as long as (or longer than) the file: done, or stale
            total = _total_from_content_range(r.headers.get("Content-Range", ""))
            if total == have:
                return
            logger.warning(
                "%s: server refused range from byte %d (file is %s bytes); restarting",
                url,
                have,
                total,
            )
            part.unlink()
            raise _Transient(f"HTTP 416 for bytes={have}-; partial file discarded")
        if r.status_code in RETRY_STATUS or r.status_code >= 500:
            raise _Transient(f"HTTP {r.status_code} {r.reason}")
        if r.status_code >= 400:
            raise SourceError(f"{url}: HTTP {r.status_code} {r.reason}")
        mode, start = "ab", have
        if r.status_code == 206:
            m = _CONTENT_RANGE.match(r.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != have:
                part.unlink(missing_ok=True)  # not the range we asked for: start over
                raise _Transient(
                    f"unexpected Content-Range {r.headers.get('Content-Range')!r} for bytes={have}-"
                )
            total = None if m.group(3) == "*" else int(m.group(3))
        else:
            # 200: the server ignored our Range (or there was none); the body is the whole file
            if have:
                logger.info("%s: server ignored the Range request; restarting from byte 0", url)
            mode, start = "wb", 0
            length = r.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        if start:
            logger.info("%s: resuming at byte %d", url, start)
        _write_body(r, part, mode, start, total)


def _total_from_content_range(value: str) -> int | None:
    m = re.match(r"bytes (?:\d+-\d+|\*)/(\d+)", value)
    return int(m.group(1)) if m else None


def _write_body(r: requests.Response, part: Path, mode: str, start: int, total: int | None) -> None:
    """Stream the body into ``part`` as it arrives, so a dropped connection keeps what came.

    The raw stream is read, not ``iter_content``: it returns the bytes exactly as
    served (no Content-Encoding decoding of a .gz), and it hands over every byte
    received before the connection broke, where ``iter_content`` loses the last
    partial chunk.
    """
    bar = progress(
        total=total,
        initial=start,
        unit="B",
        unit_scale=True,
        desc=part.name,
        disable=(total or 0) < PROGRESS_MIN_BYTES,
    )
    with bar, open(part, mode) as f:
        try:
            while chunk := r.raw.read(CHUNK_BYTES, decode_content=False):
                f.write(chunk)
                bar.update(len(chunk))
        except urllib3.exceptions.HTTPError as e:  # IncompleteRead, ReadTimeout, reset
            raise _Transient(f"connection broken after {f.tell()} bytes: {e}") from e
    size = part.stat().st_size
    if total is not None and size != total:
        raise _Transient(f"body truncated: have {size} of {total} bytes")


# --- Hugging Face Hub ---------------------------------------------------------------------


def hub_patterns(repo: HubRepo, include: list[str]) -> list[str] | None:
    """allow_patterns for snapshot_download: ``include`` under the uri's path in the repo."""
    if not repo.path:
        return list(include) or None
    prefix = repo.path.rstrip("/")
    if not include:
        return [prefix, f"{prefix}/*"]
    return [f"{prefix}/{p}" for p in include]


def fetch_hub(
    name: str, repo: HubRepo, spec: dict, staging: Path, settings: dict, taken: dict[str, str]
) -> list[FileEntry]:
    """Fetch a Hub dataset's files (through the huggingface_hub cache) and copy them into staging.

    huggingface_hub reads HF_ENDPOINT, HF_HUB_OFFLINE, HF_HOME and HF_HUB_CACHE itself;
    with HF_HUB_OFFLINE=1 a warm cache is enough.
    """
    from huggingface_hub import constants as hub_constants
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )
    from huggingface_hub.utils import filter_repo_objects

    revision = spec["revision"]
    patterns = hub_patterns(repo, spec["include"])
    where = f"hf://{repo.repo_type}s/{repo.repo_id} (revision {revision})"
    retries, backoff = int(settings["retries"]), float(settings["backoff_seconds"])
    for attempt in range(retries + 1):
        try:
            folder = Path(
                snapshot_download(
                    repo.repo_id,
                    repo_type=repo.repo_type,
                    revision=revision,
                    allow_patterns=patterns,
                )
            )
            break
        except RepositoryNotFoundError as e:
            raise SourceError(f"source {name}: {where}: repository not found ({e})") from e
        except HfHubHTTPError as e:
            status = e.response.status_code if e.response is not None else None
            if status is not None and status < 500 and status not in RETRY_STATUS:
                raise SourceError(f"source {name}: {where}: {e}") from e
            error: Exception = e
        except LocalEntryNotFoundError as e:
            # the Hub unreachable and the cache cold; offline, a retry cannot help
            if hub_constants.is_offline_mode():
                raise DownloadError(
                    f"source {name}: {where}: HF_HUB_OFFLINE is set and not in the cache: {e}"
                ) from e
            error = e
        if attempt == retries:
            raise DownloadError(
                f"source {name}: {where}: failed after {retries + 1} attempts: {error}"
            ) from error
        time.sleep(backoff * 2**attempt)
    commit = folder.name  # snapshots/<commit>
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    # the snapshot folder may hold files of earlier calls with other patterns
    files = list(filter_repo_objects(files, allow_patterns=patterns))
    if not files:
        raise SourceError(f"source {name}: {where}: no files match {patterns or 'anything'}")
    entries = []
    for rel in files:
        origin = repo.uri(rel)
        _claim(taken, rel, origin, name)
        dest = staging / rel
        place_file((folder / rel).resolve(), dest, link=settings["link_local"])
        entries.append(
            FileEntry(rel, origin, dest.stat().st_size, file_sha256(dest), {"revision": commit})
        )
    logger.info("source %s: %s -> %d file(s) at commit %s", name, where, len(entries), commit)
    return entries

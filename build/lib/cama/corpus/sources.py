"""Where a source's data is: classify and resolve the ``uri`` of a config source.

A uri is one of

- ``hf://datasets/<owner>/<name>[/<path in repo>]``: a Hugging Face Hub dataset repo;
- ``http://...`` or ``https://...``: one file on a web server;
- a local path (file or folder) or a glob, relative to the workflow folder, with
  ``$VARS`` and ``~`` expanded.

These helpers are pure (no network, no file reads) except :func:`local_matches`,
which lists the files a local path or glob stands for.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from cama.errors import SourceError

HUB_PREFIX = "hf://"


class UriKind(StrEnum):
    HUB = "hub"
    HTTP = "http"
    GLOB = "glob"
    LOCAL = "local"


@dataclass(frozen=True)
class HubRepo:
    """A Hub repo named by an ``hf://`` uri; ``path`` narrows it to a file or folder."""

    repo_type: str  # only "dataset" for now
    repo_id: str  # "owner/name"
    path: str = ""  # "" = the whole repo

    def uri(self, file: str) -> str:
        """The ``hf://`` uri of one file of this repo, for the manifest."""
        return f"{HUB_PREFIX}{self.repo_type}s/{self.repo_id}/{file}"


def as_uri_list(uri: str | Sequence[str]) -> list[str]:
    """The config allows one uri or a list of them; code downstream sees a list."""
    return [uri] if isinstance(uri, str) else list(uri)


def classify_uri(uri: str) -> UriKind:
    """Which kind of location ``uri`` is; local paths with glob magic are globs."""
    if uri.startswith(HUB_PREFIX):
        return UriKind.HUB
    scheme = urlsplit(uri).scheme.lower()
    if scheme in ("http", "https"):
        return UriKind.HTTP
    if scheme not in ("", "file") and len(scheme) > 1:  # one letter: a Windows drive
        raise SourceError(
            f"{uri}: unsupported uri scheme {scheme!r} (use a local path, http(s):// or hf://datasets/)"
        )
    return UriKind.GLOB if glob.has_magic(uri) else UriKind.LOCAL


def parse_hub_uri(uri: str) -> HubRepo:
    """``hf://datasets/owner/name[/path]`` → HubRepo; anything else is a SourceError naming the uri."""
    if not uri.startswith(HUB_PREFIX):
        raise SourceError(f"{uri}: not a hub uri (expected hf://datasets/<owner>/<name>)")
    parts = [p for p in uri[len(HUB_PREFIX) :].split("/") if p]
    if len(parts) < 3 or parts[0] != "datasets":
        raise SourceError(f"{uri}: expected hf://datasets/<owner>/<name>[/<path>]")
    if "@" in parts[2]:
        # revisions belong in the source's `revision` key, so there is one place to look
        raise SourceError(
            f"{uri}: give the revision with the source's `revision` key, not '@' in the uri"
        )
    return HubRepo(repo_type="dataset", repo_id=f"{parts[1]}/{parts[2]}", path="/".join(parts[3:]))


def url_filename(url: str) -> str:
    """The file name a URL's path ends with (percent-decoded); a URL ending in '/' has none."""
    name = posixpath.basename(unquote(urlsplit(url).path))
    if not name or name in (".", ".."):
        raise SourceError(f"{url}: the URL does not end with a file name")
    return name


def expand_path(uri: str, workdir: str | os.PathLike) -> Path:
    """``$VARS`` and ``~`` expanded; a relative path is taken relative to ``workdir``."""
    if uri.startswith("file://"):
        uri = unquote(urlsplit(uri).path)
    path = Path(os.path.expanduser(os.path.expandvars(uri)))
    return path if path.is_absolute() else Path(workdir) / path


def glob_base(pattern: str | os.PathLike) -> Path:
    """The longest leading part of a glob without magic: the folder that relative names start from."""
    parts = Path(pattern).parts
    base: list[str] = []
    for part in parts:
        if glob.has_magic(part):
            break
        base.append(part)
    return Path(*base) if base else Path(".")


def matches_include(relpath: str, include: Sequence[str]) -> bool:
    """Does a relative path match one of the ``include`` globs? ``[]`` takes everything.

    A pattern is tried on the whole relative path and on the file name, so ``*.py``
    takes ``pkg/mod.py`` and ``pkg/*.py`` takes only that folder's files.
    """
    if not include:
        return True
    name = PurePosixPath(relpath).name
    return any(fnmatch.fnmatchcase(relpath, p) or fnmatch.fnmatchcase(name, p) for p in include)


def _walk_files(folder: Path) -> list[Path]:
    """Every file under ``folder`` (following no directory symlinks), in sorted order."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        found += [Path(root) / f for f in sorted(files)]
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def local_matches(path: Path, include: Sequence[str] = ()) -> list[tuple[Path, str]]:
    """The files a local path, folder or glob stands for, as (absolute file, relative name).

    - a file: itself, named by its basename;
    - a folder: every file below it, named relative to it;
    - a glob: the sorted matches, named relative to the glob's non-magic base
      (a matched folder contributes every file below it).

    ``include`` filters by relative name. The order is deterministic (sorted).
    An empty result is returned as is; the caller decides that it is an error.
    """
    text = str(path)
    if glob.has_magic(text):
        base = glob_base(text)
        hits = [Path(p) for p in sorted(glob.glob(text, recursive=True))]
    elif path.is_dir():
        base, hits = path, [path]
    elif path.exists():
        base, hits = path.parent, [path]
    else:
        return []
    out: list[tuple[Path, str]] = []
    for hit in hits:
        files = _walk_files(hit) if hit.is_dir() else [hit]
        for file in files:
            rel = file.relative_to(base).as_posix()
            if matches_include(rel, include):
                out.append((file.absolute(), rel))
    return out

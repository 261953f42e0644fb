"""Snakemake's directory lock, made safe to leave behind: a rerun after ``kill -9`` needs no ``--unlock``.

Snakemake locks the working directory (``.snakemake/locks/<n>.input.lock`` and
``<n>.output.lock``) for the length of a run and removes the locks when it ends. A run killed
with SIGKILL cannot remove them, and the next run stops with a ``LockException`` until the
user runs ``snakemake --unlock``. The lock files do not say whose they are, so Snakemake
cannot tell a dead run's locks from a live one's.

The workflow records it: when a run starts its jobs (``onstart``), ``claim`` writes
``.snakemake/locks/cama-owner.<pid>.json`` with this host, the Snakemake process id, that
process's start time and the lock files it holds. When the workflow is next read by a main
Snakemake process, ``clear_stale`` removes the locks of every recorded owner that is provably
gone: same host, and no process with that id and start time. Locks of a live run, of a run
on another host (a shared file system), or with no record are left alone; Snakemake then
refuses to start as before and ``snakemake --unlock`` is still the way out.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

OWNER_GLOB = "cama-owner.*.json"


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (``/proc/<pid>/stat`` field 22), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _lock_files(lockdir: Path) -> set[str]:
    return {p.name for p in lockdir.glob("*.lock")} if lockdir.is_dir() else set()


def _owners(lockdir: Path) -> list[tuple[Path, dict]]:
    out = []
    for path in sorted(lockdir.glob(OWNER_GLOB)) if lockdir.is_dir() else []:
        try:
            out.append((path, json.loads(path.read_text())))
        except (OSError, ValueError):
            continue
    return out


def claim(snakemake_dir: str | os.PathLike = ".snakemake", pid: int | None = None) -> Path | None:
    """Record this run as the owner of the lock files it holds (call when the run starts its jobs).

    The run's locks are the lock files present now that no other recorded owner holds.
    """
    lockdir = Path(snakemake_dir) / "locks"
    pid = pid or os.getpid()
    start = _start_time(pid)
    if start is None or not lockdir.is_dir():
        return None
    others = {name for path, rec in _owners(lockdir) if rec.get("pid") != pid for name in rec.get("locks", [])}
    record = {"host": socket.gethostname(), "pid": pid, "start": start, "locks": sorted(_lock_files(lockdir) - others)}
    path = lockdir / f"cama-owner.{pid}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, path)
    return path


def clear_stale(snakemake_dir: str | os.PathLike = ".snakemake") -> list[str]:
    """Remove the locks of recorded owners that are gone; return a line per owner removed."""
    lockdir = Path(snakemake_dir) / "locks"
    host = socket.gethostname()
    removed = []
    for path, rec in _owners(lockdir):
        pid = rec.get("pid")
        if rec.get("host") != host or not isinstance(pid, int) or pid == os.getpid():
            continue
        if _start_time(pid) == rec.get("start"):
            continue  # that run is alive
        for name in rec.get("locks", []):
            (lockdir / name).unlink(missing_ok=True)
        path.unlink(missing_ok=True)
        removed.append(
            f"removed the directory locks of a Snakemake run that was killed (pid {pid}): "
            f"{', '.join(rec.get('locks', [])) or 'none'}"
        )
    return removed

"""Logging for rule scripts: everything, warnings and tracebacks included, goes to the rule's log."""

from __future__ import annotations

import logging
import os
import sys


def setup_logging(log_path: str | os.PathLike | None, level: int = logging.INFO) -> logging.Logger:
    """Send stderr (tracebacks, tqdm bars) and the ``cama`` loggers to ``log_path``."""
    if log_path:
        os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
        sys.stderr = open(log_path, "w", buffering=1, encoding="utf-8")  # noqa: SIM115
    logging.basicConfig(
        stream=sys.stderr,
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    return logging.getLogger("cama")


def progress(iterable=None, **kwargs):
    """A tqdm bar that writes to the log, sparsely enough to stay readable."""
    from tqdm.auto import tqdm

    kwargs.setdefault("mininterval", 5.0)
    kwargs.setdefault("file", sys.stderr)
    kwargs.setdefault("dynamic_ncols", False)
    kwargs.setdefault("ascii", True)
    return tqdm(iterable, **kwargs)

"""``cama validate``: the schema check, then the preflight checks for a real run.

Every problem is printed at once, each naming its key or file; the exit status is 1 on any.
The workflow runs the same checks before its first job (``rules/common.smk``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cama.config import load_config

DEFAULT_CONFIG = Path("config") / "config.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--configfile", type=Path, default=DEFAULT_CONFIG, help="the run's config (default: %(default)s)"
    )


def run(args: argparse.Namespace) -> int:
    load_config(args.configfile)  # raises ConfigError naming every bad key
    print(f"{args.configfile}: valid")
    return 0

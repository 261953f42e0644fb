"""``cama pretrain``: continued pretraining under the launcher (what the ``pretrain`` rule runs).

    cama pretrain --gpus 0 --tasks 2 --threads 2 -- --blend results/shards/blend.json ...

The options before ``--`` are the launcher's (``cama.train.launch``: processes per node, cores);
everything after it goes to the training module, ``cama.pretrain.train``.
"""

from __future__ import annotations

import argparse

from cama.train import launch

MODULE = "cama.pretrain.train"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    launch.add_arguments(parser)
    parser.add_argument("train_args", nargs=argparse.REMAINDER, help="-- then the options of cama.pretrain.train")


def run(args: argparse.Namespace) -> int:
    train_args = args.train_args[1:] if args.train_args[:1] == ["--"] else args.train_args
    own = ["--gpus", str(args.gpus), "--tasks", str(args.tasks), "--threads", str(args.threads),
           "--port", str(args.port)] + (["--dry-run"] if args.dry_run else [])  # fmt: skip
    return launch.main([*own, "--", *train_args], module=MODULE, prog="cama pretrain")

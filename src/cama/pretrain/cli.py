"""``cama pretrain``: the launcher (``cama.pretrain.launch``) as a subcommand.

    cama pretrain --gpus 0 --tasks 2 --threads 2 -- --blend results/shards/blend.json ...

Everything after ``--`` goes to the training script.
"""

from __future__ import annotations

import argparse

from cama.pretrain import launch


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("launch_args", nargs=argparse.REMAINDER, help="launcher options, then -- and the training options")


def run(args: argparse.Namespace) -> int:
    launch.main(args.launch_args)
    return 0

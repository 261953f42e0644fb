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
    launch.add_subcommand_arguments(parser, MODULE)


def run(args: argparse.Namespace) -> int:
    return launch.run_subcommand(args, module=MODULE, prog="cama pretrain")

"""``cama lora``: LoRA instruction tuning under the launcher (what the ``lora`` rule runs).

    cama lora --gpus 0 --tasks 1 --threads 2 -- --data results/lora/data --base-model results/pretrain/model ...

The options before ``--`` are the launcher's (``cama.train.launch``: processes per node, cores);
everything after it goes to the training module, ``cama.lora.train``.
"""

from __future__ import annotations

import argparse

from cama.train import launch

MODULE = "cama.lora.train"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    launch.add_subcommand_arguments(parser, MODULE)


def run(args: argparse.Namespace) -> int:
    return launch.run_subcommand(args, module=MODULE, prog="cama lora")

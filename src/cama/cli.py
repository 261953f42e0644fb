"""The ``cama`` command: one front door for what users run by hand; the rules call the same entry points.

Each subcommand lives in the module of its stage. The table below names it and gives its one
line of help; the module provides two functions:

- ``add_arguments(parser: argparse.ArgumentParser) -> None``
- ``run(args: argparse.Namespace) -> int`` (the exit status)

A module is imported only when its command runs, so ``cama --help`` starts in well under a
second (no torch import). A new stage adds one line to ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from cama.errors import CamaError

# name -> (module, one line of help). Keep the order a user would follow.
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("cama.preflight", "check a config: the schema, then the preflight checks for a real run"),
    "pretrain": ("cama.pretrain.cli", "continued pretraining under the launcher (what the pretrain rule runs)"),
    "lora": ("cama.lora.cli", "LoRA instruction tuning under the launcher (what the lora rule runs)"),
    "merge": ("cama.lora.merge", "merge a LoRA adapter into its base model: a full HF folder with the chat template"),
    "instruct": ("cama.instruct.cli", "instruction data by hand: convert a source, translate records, parse an IE answer"),
    "eval": ("cama.evaluate.cli", "evaluate by hand: IE micro-F1 of a model (ie), lm-evaluation-harness (lm-eval)"),
    "generate": ("cama.generate.cli", "run a model (and adapter) on a case file or prompts: batched, streamed"),
    "diff": ("cama.publish.diff", "weight diff: `cama diff make --base B --tuned T --out D`, streamed, with a per-tensor manifest"),
    "recover": ("cama.publish.recover", "rebuild the tuned model from the base and a diff, every tensor verified"),
    "publish": ("cama.publish.upload", "upload the hub-ready folder (results/publish) to the Hub; --dry-run shows the plan"),
    "download": ("cama.publish.download", "download a published model, check SHA256SUMS, optionally --recover it"),
    "chat": ("cama.serve.terminal", "talk to a model in the terminal: multi-turn, streaming, /set, an IE mode"),
    "web": ("cama.serve.web", "a web page (gradio) for a model: instruction form, chat, IE prompt builder"),
    "serve": ("cama.serve.cli", "an OpenAI-compatible API for a model and its LoRA adapters (or vLLM's)"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported to add its arguments."""
    parser = argparse.ArgumentParser(
        prog="cama",
        description="Build a Chinese-English bilingual LLaMA, reproducibly. "
        "The workflow runs with `snakemake`; these commands are the same entry points, by hand.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", metavar="<command>", title="commands")
    for name, (module, help_line) in COMMANDS.items():
        p = sub.add_parser(name, help=help_line, description=help_line)
        if name == command:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if a in COMMANDS), None)
    args = build_parser(command).parse_args(argv)
    if args.command is None:
        build_parser().print_help()
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(importlib.import_module(COMMANDS[args.command][0]).run(args) or 0)
    except CamaError as e:  # a named, expected failure: its message, no traceback
        print(f"cama {args.command}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

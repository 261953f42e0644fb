"""``cama instruct``: the instruct stage's entry points, by hand.

- ``cama instruct convert NAME``: fetch and convert one source (or IE evaluation set) of a
  config into a folder, to see what your data becomes before a run; ``--eval`` builds it as an
  evaluation set. Run it from the workflow folder: relative uris are read from there.
- ``cama instruct translate RECORDS OUT --to zh``: translate a records file through an
  OpenAI-compatible endpoint, with the config's ``instruct.translate`` settings, overridden
  by the flags (``--base-url``, ``--model``, ``--api-key-env``, ``--budget-tokens`` ...).
- ``cama instruct parse TASK FORMAT LABELS``: parse an answer (stdin) the way evaluation does.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="<action>")
    c = sub.add_parser("convert", help="fetch and convert one source of a config into a folder")
    c.add_argument("name", help="a key of instruct.sources (or of evaluate.ie.sets with --eval)")
    c.add_argument(
        "--config", default="config/config.yaml", help="the workflow config (default: the demo)"
    )
    c.add_argument("--out", default="instruct-convert", help="output folder")
    c.add_argument("--eval", action="store_true", help="build it as an IE evaluation set")

    t = sub.add_parser(
        "translate", help="translate a records file through an OpenAI-compatible API"
    )
    t.add_argument("records", help="a JSONL file of instruction records")
    t.add_argument(
        "out", help="the translated records (JSONL); .rejected.jsonl and .stats.json go beside it"
    )
    t.add_argument("--to", choices=["zh", "en"], required=True)
    t.add_argument("--mode", choices=["both", "question"], default="both")
    t.add_argument(
        "--config", default="config/config.yaml", help="instruct.translate is read from here"
    )
    t.add_argument("--base-url")
    t.add_argument("--model")
    t.add_argument("--api-key-env", help="the name of the variable that holds the key")
    t.add_argument("--concurrency", type=int)
    t.add_argument("--budget-tokens", type=int)
    t.add_argument("--budget-cost", type=float)
    t.add_argument("--cache", default="results/instruct/cache/translate.sqlite")

    p = sub.add_parser(
        "parse", help="parse an answer from stdin into its gold structure (as evaluation does)"
    )
    p.add_argument("task", choices=["ner", "re", "ee"])
    p.add_argument("format", choices=["json", "tuple", "lines"])
    p.add_argument("labels", help="the asked labels, comma-separated")


def _config(path: str) -> dict:
    from cama.config import load_config

    return load_config(path)


def run(args: argparse.Namespace) -> int:
    if args.action == "parse":
        from cama.instruct.ie import ParseError, parse

        try:
            print(
                json.dumps(
                    parse(args.task, args.format, sys.stdin.read(), args.labels.split(",")),
                    ensure_ascii=False,
                )
            )
        except ParseError as e:
            print(f"ParseError: {e}", file=sys.stderr)
            return 1
        return 0

    config = _config(args.config)
    if args.action == "convert":
        from cama.corpus.download import download_source
        from cama.instruct.convert import build_eval_set, convert_source

        entries = config["evaluate"]["ie"]["sets"] if args.eval else config["instruct"]["sources"]
        if args.name not in entries:
            print(
                f"cama instruct convert: no {'evaluate.ie.sets' if args.eval else 'instruct.sources'} entry {args.name!r}"
                f" in {args.config} (known: {', '.join(entries)})",
                file=sys.stderr,
            )
            return 2
        out = Path(args.out)
        raw = out / "raw" / args.name
        download_source(
            args.name, entries[args.name], str(raw), config["download"], "."
        )  # uris are relative to here
        fn = build_eval_set if args.eval else convert_source
        stats = fn(
            args.name,
            entries[args.name],
            raw,
            out / f"{args.name}.jsonl",
            out / f"{args.name}.quarantine.parquet",
            out / f"{args.name}.stats.json",
            config["instruct"]["ie"],
            config["instruct"]["seed"],
        )
        print(
            json.dumps(
                {k: stats[k] for k in ("read", "kept", "quarantined", "records")},
                ensure_ascii=False,
            )
        )
        return 0

    from cama.instruct.translate.stage import translate_source

    settings = dict(config["instruct"]["translate"])
    settings["provider"] = "openai"
    for flag, key in (
        ("base_url", "base_url"),
        ("model", "model"),
        ("api_key_env", "api_key_env"),
        ("concurrency", "concurrency"),
    ):
        if getattr(args, flag) is not None:
            settings[key] = getattr(args, flag)
    settings["budget"] = {
        "tokens": args.budget_tokens
        if args.budget_tokens is not None
        else settings["budget"]["tokens"],
        "cost": args.budget_cost if args.budget_cost is not None else settings["budget"]["cost"],
    }
    out = Path(args.out)
    stem = out.name.removesuffix(".jsonl")
    stats = translate_source(
        stem,
        {"translate": {"to": args.to, "mode": args.mode}},
        args.records,
        out,
        out.with_name(f"{stem}.rejected.jsonl"),
        out.with_name(f"{stem}.stats.json"),
        settings,
        args.cache,
    )
    print(
        json.dumps(
            {k: stats[k] for k in ("records_in", "translated", "rejected", "untranslated")},
            ensure_ascii=False,
        )
    )
    return 0

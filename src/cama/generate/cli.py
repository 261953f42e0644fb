"""``cama generate``: run a model (and adapter) on a case file or on prompts.

    cama generate --model results/lora/merged --cases data/cases/gallery.yaml --out cases.md
    cama generate --model results/pretrain/model --adapter results/lora/adapter --prompt "你好" --preset lora

Case files are described in ``cama.generate.cases``; ``--out`` ending in ``.jsonl`` writes one
JSON line per case, ``.md`` a gallery with the seed's marks; without ``--out`` the gallery goes
to stdout. A single ``--prompt`` is streamed to stdout as it is generated.
"""

from __future__ import annotations

import argparse
import json
import sys

from cama.errors import CamaError
from cama.generate.settings import PRESETS, Settings


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="an HF model folder (weights and tokenizer)")
    p.add_argument("--adapter", help="a peft adapter folder, merged into the model")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--cases", help="a case file (.jsonl or .yaml)")
    src.add_argument("--prompt", action="append", help="a user turn (repeatable)")
    p.add_argument("--out", help="output file: .jsonl or .md (default: Markdown to stdout)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="greedy", help="decoding preset (default greedy)")
    p.add_argument("--max-new-tokens", type=int)
    p.add_argument("--temperature", type=float)
    p.add_argument("--top-p", type=float)
    p.add_argument("--top-k", type=int)
    p.add_argument("--repetition-penalty", type=float)
    p.add_argument("--num-beams", type=int)
    p.add_argument("--stop", action="append", help="a stop string (repeatable)")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="cuda or cpu (default: cuda when there is one)")
    p.add_argument("--dtype", help="float32, bfloat16, float16 (default: bf16 on GPU, fp32 on CPU)")
    p.add_argument("--max-batch", type=int, help="sequences decoded at once (default 256 on GPU, 32 on CPU)")


def settings_from(args: argparse.Namespace) -> Settings:
    from cama.generate.settings import resolve

    keys = ("max_new_tokens", "temperature", "top_p", "top_k", "repetition_penalty", "num_beams", "seed")
    overrides = {k: getattr(args, k) for k in keys if getattr(args, k) is not None}
    if args.stop:
        overrides["stop"] = tuple(args.stop)
    return resolve(args.preset, **overrides)


def run(args: argparse.Namespace) -> int:
    from cama.generate.cases import Case, read_cases, render_markdown, write_jsonl, write_markdown
    from cama.generate.engine import Engine
    from cama.generate.settings import resolve

    settings = settings_from(args)
    if args.out and not args.out.endswith((".jsonl", ".md")):
        raise CamaError(f"--out {args.out}: use a .jsonl or .md file")
    if args.cases:
        cases = read_cases(args.cases)
    else:
        cases = [Case(id=f"prompt {i + 1}", messages=[{"role": "user", "content": p}]) for i, p in enumerate(args.prompt)]
    engine = Engine.load(args.model, args.adapter, device=args.device, dtype=args.dtype, max_batch=args.max_batch)
    per = [resolve(c.settings) if c.settings else settings for c in cases]
    stream = len(cases) == 1 and not args.out
    on_token = (lambda _i, piece: (sys.stdout.write(piece), sys.stdout.flush())) if stream else None
    gens = engine.generate([c.messages for c in cases], per, on_token=on_token)
    if stream:
        print(f"\n[{gens[0].marks}; {gens[0].completion_tokens} tokens]")
        return 0
    runs = {args.adapter or args.model: {"model": args.model, "adapter": args.adapter,
                                         "settings": settings.to_dict(), "generations": gens}}  # fmt: skip
    if not args.out:
        print(render_markdown(cases, runs))
    elif args.out.endswith(".jsonl"):
        write_jsonl(args.out, cases, runs)
    else:
        write_markdown(args.out, cases, runs)
    counts = {r: sum(g.finish_reason == r for g in gens) for r in ("eos", "length", "stop")}
    print(json.dumps({"cases": len(cases), **counts}), file=sys.stderr)
    return 0

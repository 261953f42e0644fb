"""``cama eval``: evaluation by hand, with the entry points the rules use.

    cama eval ie --model results/lora/merged --set wnut17_dev=results/instruct/eval/wnut17_dev.jsonl --out ie.json
    cama eval lm-eval --model results/lora/merged --tasks cmmlu,ceval-valid,mmlu

``ie`` generates answers to IE evaluation sets and scores them (``cama.evaluate.ie``).
``lm-eval`` runs lm-evaluation-harness's HF backend (log-likelihood of each choice, as the
C-Eval/CMMLU/MMLU anchors were scored) on our models; it needs the optional extra
``pip install -e '.[eval]'``. Our own tasks in the harness's YAML format live in
``cama/resources/lm_eval/`` (``cama_mc``: a small bilingual multiple-choice task on local
files) and are always on the include path.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from cama.errors import CamaError

log = logging.getLogger(__name__)

TASKS_DIR = Path(__file__).resolve().parents[1] / "resources" / "lm_eval"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="eval_command", metavar="<what>", required=True)
    ie = sub.add_parser("ie", help="generate and score IE answers of one model")
    ie.add_argument("--model", required=True, help="an HF model folder")
    ie.add_argument("--adapter", help="a peft adapter folder")
    ie.add_argument("--set", action="append", required=True, metavar="NAME=PATH", help="an IE evaluation set (repeatable)")
    ie.add_argument("--out", required=True, help="scores (JSON); the generations go beside it (.generations.jsonl)")
    ie.add_argument("--preset", default="greedy")
    ie.add_argument("--max-new-tokens", type=int)
    ie.add_argument("--max-sentences", type=int)
    ie.add_argument("--max-batch", type=int)
    lm = sub.add_parser("lm-eval", help="lm-evaluation-harness on a model (needs the [eval] extra)")
    lm.add_argument("--model", required=True, help="an HF model folder")
    lm.add_argument("--adapter", help="a peft adapter folder (loaded by the harness)")
    lm.add_argument("--tasks", required=True, help="comma-separated harness tasks, e.g. cmmlu,ceval-valid,mmlu")
    lm.add_argument("--out", default="results/eval/lm_eval.json", help="results (JSON)")
    lm.add_argument("--include-path", action="append", default=[], help="more task YAML folders")
    lm.add_argument("--num-fewshot", type=int)
    lm.add_argument("--limit", type=float, help="examples per task (a fraction if < 1)")
    lm.add_argument("--batch-size", default="auto")
    lm.add_argument("--device", help="cuda or cpu (default: cuda when there is one)")
    lm.add_argument("--dtype", default="auto")


def run(args: argparse.Namespace) -> int:
    if args.eval_command == "ie":
        return _run_ie(args)
    result = lm_eval(model=args.model, adapter=args.adapter, tasks=args.tasks.split(","), out_json=args.out,
                     include_paths=args.include_path, num_fewshot=args.num_fewshot, limit=args.limit,
                     batch_size=args.batch_size, device=args.device, dtype=args.dtype)  # fmt: skip
    for task, metrics in result["results"].items():
        shown = {k: v for k, v in metrics.items() if isinstance(v, int | float) and "stderr" not in k}
        print(f"{task}: {json.dumps(shown)}")
    return 0


def _run_ie(args) -> int:
    from cama.evaluate.ie import generate_answers, ie_table, score_models

    sets = dict(s.split("=", 1) for s in args.set)
    gen_path = Path(args.out).with_suffix(".generations.jsonl")
    generation = {"preset": args.preset, **({"max_new_tokens": args.max_new_tokens} if args.max_new_tokens else {})}
    generate_answers(model=args.model, adapter=args.adapter, sets=sets, out_jsonl=gen_path, generation=generation,
                     max_sentences=args.max_sentences, engine_settings={"max_batch": args.max_batch})  # fmt: skip
    result = score_models(sets=sets, generations={Path(args.adapter or args.model).name: gen_path},
                          out_json=args.out, max_sentences=args.max_sentences, generation=generation)  # fmt: skip
    print(ie_table(result))
    return 0


def lm_eval(
    *,
    model: str,
    tasks: list[str],
    out_json: str,
    adapter: str | None = None,
    include_paths: list[str] = (),
    num_fewshot: int | None = None,
    limit: float | None = None,
    batch_size: str | int = "auto",
    device: str | None = None,
    dtype: str = "auto",
) -> dict:
    """Run the harness's HF backend on ``model`` (+ ``adapter``); write its results to ``out_json``."""
    try:
        import lm_eval as harness
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise CamaError("cama eval lm-eval needs lm-evaluation-harness: pip install -e '.[eval]'") from None
    import torch

    from cama.io import write_json

    if not (Path(model) / "config.json").is_file():
        raise CamaError(f"{model}: not a model folder (no config.json)")
    manager = TaskManager(include_path=[str(TASKS_DIR), *include_paths])
    unknown = [t for t in tasks if t not in manager.all_tasks]
    if unknown:
        raise CamaError(f"lm-eval: unknown task(s) {', '.join(unknown)} (include paths: {TASKS_DIR}, {list(include_paths)})")
    model_args = {"pretrained": str(model), "dtype": dtype}
    if adapter:
        model_args["peft"] = str(adapter)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if str(batch_size).isdigit():
        batch_size = int(batch_size)
    log.info("lm-eval: %s on %s (%s)", ",".join(tasks), model, device)
    res = harness.simple_evaluate(model="hf", model_args=model_args, tasks=tasks, task_manager=manager,
                                  num_fewshot=num_fewshot, limit=limit, batch_size=batch_size, device=device,
                                  log_samples=False)  # fmt: skip
    out = {"model": str(model), "adapter": adapter, "tasks": tasks, "results": res["results"],
           "n_samples": res.get("n-samples"), "versions": res.get("versions"), "num_fewshot": num_fewshot,
           "limit": limit, "lm_eval_version": getattr(harness, "__version__", None)}  # fmt: skip
    write_json(out_json, json.loads(json.dumps(out, default=str)))
    return out

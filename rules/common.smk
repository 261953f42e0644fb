# Config validation, the preflight checks, input functions and wildcard constraints. No rules here.
import sys
from pathlib import Path

sys.path.insert(
    0, str(Path(workflow.basedir) / "src")
)  # works without pip install -e too

from cama.config import (
    LANGS,
    source_filter_settings,
    source_layout_settings,
    validate_config,
)
from cama import locks

validate_config(config)

# A run killed with kill -9 leaves its directory locks behind: remove them when provably stale.
if workflow.is_main_process:
    for line in locks.clear_stale(".snakemake"):
        print(f"cama: {line}", file=sys.stderr)

RESULTS = config["results"]
SOURCES = list(config["sources"])
INSTRUCT_SOURCES = list(config["instruct"]["sources"])
IE_SETS = list(config["evaluate"]["ie"]["sets"])
TRANSLATED = [
    s for s in INSTRUCT_SOURCES if config["instruct"]["sources"][s]["translate"]
]


wildcard_constraints:
    source="|".join(SOURCES),
    name="|".join(INSTRUCT_SOURCES + IE_SETS) or "(?!)",
    isource="|".join(INSTRUCT_SOURCES) or "(?!)",
    ieset="|".join(IE_SETS) or "(?!)",
    tsource="|".join(TRANSLATED) or "(?!)",


def source_lang(source):
    return config["sources"][source]["lang"]


def preflight():
    """cama validate's checks, before any job: the base model, the tokenizer, the paths, the
    batch for the processes the pretrain rule gets (after the profile's set-resources).
    """
    if not workflow.is_main_process:
        return
    from cama.errors import ConfigError
    from cama.preflight import Context
    from cama.preflight import preflight as checks

    res = rules.pretrain.rule.resources
    value = lambda name, default: int(getattr(res.get(name), "value", None) or default)
    gpu, nodes, procs = value("gpu", 0), value("nodes", 1), value("procs", 1)
    ctx = Context(
        directory=Path.cwd(),
        workflow=Path(workflow.basedir),
        processes=gpu if gpu > 0 else nodes * procs,
    )
    problems = checks(config, ctx)
    if problems:
        raise ConfigError(problems)


def get_base_model():
    """The base model folder: model.base, or the demo's initialised model when it is null."""
    return config["model"]["base"] or f"{RESULTS}/pretrain/base"


def instruct_spec(name):
    """An instruction source or an IE evaluation set, by name (instruct.sources, evaluate.ie.sets)."""
    return (
        config["instruct"]["sources"].get(name)
        or config["evaluate"]["ie"]["sets"][name]
    )


def get_instruct_inputs():
    """Record files per instruction source, in config order: converted, then translated."""
    return {
        s: [f"{RESULTS}/instruct/sources/{s}.jsonl"]
        + ([f"{RESULTS}/instruct/translated/{s}.jsonl"] if s in TRANSLATED else [])
        for s in INSTRUCT_SOURCES
    }


def get_instruct_records():
    return [path for paths in get_instruct_inputs().values() for path in paths]


def get_translation_stats():
    return {s: f"{RESULTS}/instruct/translated/{s}.stats.json" for s in TRANSLATED}


def get_final_output():
    return [
        f"{RESULTS}/dedup/stats.json",
        f"{RESULTS}/report/funnel.png",
        f"{RESULTS}/report/rejections.html",
        f"{RESULTS}/report/dedup_clusters.png",
        f"{RESULTS}/shards/blend.json",
        f"{RESULTS}/report/sample_lengths.png",
        f"{RESULTS}/eval/bpb.json",
        f"{RESULTS}/instruct/train.jsonl",
        f"{RESULTS}/instruct/val.jsonl",
        f"{RESULTS}/report/instruct_table.html",
        *expand(f"{RESULTS}/instruct/eval/{{ieset}}.jsonl", ieset=IE_SETS),
        f"{RESULTS}/lora/stats.json",
        f"{RESULTS}/lora/merged",
        *([f"{RESULTS}/eval/ie.json"] if IE_SETS else []),
        f"{RESULTS}/eval/cases.md",
    ] + get_publish_outputs()


# --- evaluate (rules/evaluate.smk) ---


def made_by_workflow(path):
    """True when a rule of the workflow writes ``path`` (e.g. the LoRA stage's lora/adapter)."""
    return any(str(f) == path for r in workflow.rules for f in r.output)


def get_cases_file():
    """evaluate.cases.file: in the working directory if it is there, else in the repository."""
    path = Path(config["evaluate"]["cases"]["file"])
    return str(
        path if path.is_absolute() or path.exists() else Path(workflow.basedir) / path
    )


def get_eval_models():
    """Model name -> {"model": HF folder, "adapter": peft folder or None}: base and pretrained
    always, lora (adapter on the pretrained model) and merged when the LoRA stage makes them.
    """
    models = {
        "base": {"model": get_base_model(), "adapter": None},
        "pretrained": {"model": f"{RESULTS}/pretrain/model", "adapter": None},
        "lora": {
            "model": f"{RESULTS}/pretrain/model",
            "adapter": f"{RESULTS}/lora/adapter",
        },
        "merged": {"model": f"{RESULTS}/lora/merged", "adapter": None},
    }
    return {
        name: m
        for name, m in models.items()
        if not m["adapter"] or made_by_workflow(m["adapter"])
        if name != "merged" or made_by_workflow(m["model"])
    }


def get_model_inputs(wildcards):
    """The model folder (and adapter) of one evaluated model."""
    m = EVAL_MODELS[wildcards.model]
    return {"model": m["model"], **({"adapter": m["adapter"]} if m["adapter"] else {})}


def get_publish_inputs():
    """What the publish stage reads: the merged LoRA model (published as a diff against the
    base) and its adapter; the evaluation results (IE F1 when evaluation sets are configured)
    and the data statistics for the card."""
    ie_json = [f"{RESULTS}/eval/ie.json"] if IE_SETS else []
    return {
        "base": get_base_model(),
        "tuned": f"{RESULTS}/lora/merged",
        "adapter": [f"{RESULTS}/lora/adapter"],
        "evals": [f"{RESULTS}/eval/bpb.json", *ie_json],
        "instruct_stats": [f"{RESULTS}/instruct/stats.json"],
        "normalise": expand(f"{RESULTS}/docs/{{source}}.stats.json", source=SOURCES),
        "filter": expand(f"{RESULTS}/clean/{{source}}.stats.json", source=SOURCES),
        "dedup": f"{RESULTS}/dedup/stats.json",
        "blend": f"{RESULTS}/shards/blend.json",
    }


def get_publish_outputs():
    """The hub-ready folder always; the upload record only when publish.repo_id is set."""
    out = [f"{RESULTS}/publish", f"{RESULTS}/report/model_card.html"]
    if config["publish"]["repo_id"]:
        out.append(f"{RESULTS}/publish.upload.json")
    return out

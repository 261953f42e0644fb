# Config validation, input functions and wildcard constraints. No rules here.
import sys
from pathlib import Path

sys.path.insert(
    0, str(Path(workflow.basedir) / "src")
)  # works without pip install -e too

from cama.config import source_filter_settings, validate_config

validate_config(config)

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
    ]

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


wildcard_constraints:
    source="|".join(SOURCES),


def source_lang(source):
    return config["sources"][source]["lang"]


def get_base_model():
    """The base model folder: model.base, or the demo's initialised model when it is null."""
    return config["model"]["base"] or f"{RESULTS}/pretrain/base"


def get_final_output():
    return [
        f"{RESULTS}/dedup/stats.json",
        f"{RESULTS}/report/funnel.png",
        f"{RESULTS}/report/rejections.html",
        f"{RESULTS}/report/dedup_clusters.png",
        f"{RESULTS}/shards/blend.json",
        f"{RESULTS}/report/sample_lengths.png",
        f"{RESULTS}/eval/bpb.json",
    ] + get_publish_outputs()


def get_publish_inputs():
    """What the publish stage reads. At merge time, the LoRA stage (issue 12) and the IE
    evaluation (issue 13) each change one line here, as the comments say."""
    return {
        "base": get_base_model(),
        "tuned": f"{RESULTS}/pretrain/model",  # LoRA: f"{RESULTS}/lora/merged"
        "adapter": [],  # LoRA: [f"{RESULTS}/lora/adapter"]
        "evals": [f"{RESULTS}/eval/bpb.json"],  # IE: + [f"{RESULTS}/eval/ie.json"]
        "instruct_stats": [],  # instruct: [f"{RESULTS}/instruct/stats.json"]
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

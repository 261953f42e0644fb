# Config validation, input functions and wildcard constraints. No rules here.
import sys
from pathlib import Path

sys.path.insert(
    0, str(Path(workflow.basedir) / "src")
)  # works without pip install -e too

from cama.config import source_filter_settings, source_layout_settings, validate_config

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
    ]

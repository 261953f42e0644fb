"""Peak memory of normalise + filter + dedup on the demo corpus repeated to >= 1 GB.

Target (issue 2): every stage under 2 GB RSS, whatever the corpus size, because each
streams its input. The baseline is the size of the input itself: a stage that loaded
its input whole would need at least that much.

    python benchmarks/corpus_memory.py --target-gb 1.0 --workdir /tmp/cama-mem

Writes one zstd JSONL file per language (the benchmark documents of corpus.py,
repeated in order), then runs each stage in a fresh process and prints its peak RSS
(ru_maxrss) next to the input size, with the ratio.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

STAGE = r"""
import json, resource, sys, yaml
from cama.config import validate_config
args = json.loads(sys.argv[1])
config = yaml.safe_load(open(args["config"]))
validate_config(config)
stage = args["stage"]
if stage == "download":
    from cama.corpus.download import download_source
    download_source(args["name"], config["sources"][args["name"]], args["raw"], config["download"], args["workdir"])
elif stage == "normalise":
    from cama.corpus.normalise import normalise_source
    p = args["prefix"]
    normalise_source(args["name"], config["sources"][args["name"]], args["raw"], p + ".parquet",
                     p + ".rejected.parquet", p + ".quarantine.parquet", p + ".stats.json", config["normalise"])
elif stage == "filter":
    from cama.clean.filter import filter_source
    p = args["prefix"]
    filter_source(args["docs"], p + ".parquet", p + ".rejected.parquet", p + ".stats.json",
                  config["sources"][args["name"]]["lang"], config["filter"])
elif stage == "dedup":
    from cama.clean.dedup import dedup_corpus
    dedup_corpus(args["inputs"], args["outputs"], args["langs"], args["clusters"], args["stats"], config["dedup"])
print("MAXRSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def write_corpus(workdir: Path, target_gb: float) -> dict[str, int]:
    """One .jsonl.zst per language, each about a third of the target size."""
    sizes = {}
    for lang in ("en", "zh", "code"):
        docs = corpus.load(lang)
        path = workdir / f"{lang}.jsonl.zst"
        target = target_gb * 1e9 / 3
        written = 0
        with open(path, "wb") as raw, zstandard.ZstdCompressor(level=3).stream_writer(raw) as zw:
            out = io.TextIOWrapper(zw, encoding="utf-8")
            while written < target:
                for text in docs:
                    line = json.dumps({"text": text}, ensure_ascii=False) + "\n"
                    out.write(line)
                    written += len(text.encode("utf-8"))
            out.flush()
        sizes[lang] = written
    return sizes


def run_stage(args: dict) -> tuple[float, float]:
    t = time.time()
    proc = subprocess.run([sys.executable, "-c", STAGE, json.dumps(args)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"stage {args['stage']} failed:\n{proc.stderr[-4000:]}")
    kb = int(proc.stdout.split("MAXRSS_KB")[-1].split()[0])
    return kb / 1024, time.time() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target-gb", type=float, default=1.0)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/cama-mem"))
    a = ap.parse_args()
    w = a.workdir
    w.mkdir(parents=True, exist_ok=True)
    sizes = write_corpus(w, a.target_gb)
    total = sum(sizes.values())
    print(f"corpus: {total / 1e9:.2f} GB of text ({', '.join(f'{k} {v / 1e9:.2f} GB' for k, v in sizes.items())})")
    config = {
        "results": str(w / "results"),
        "sources": {f"mem_{lang}": {"lang": lang, "uri": str(w / f"{lang}.jsonl.zst")} for lang in sizes},
        "download": {"link_local": True},
    }
    cfg = w / "config.yaml"
    import yaml

    cfg.write_text(yaml.safe_dump(config))
    peaks = []
    for name in config["sources"]:
        raw = str(w / "results/raw" / name)
        for stage, extra in (
            ("download", {"raw": raw}),
            ("normalise", {"raw": raw, "prefix": str(w / "results/docs" / name)}),
            ("filter", {"docs": str(w / "results/docs" / f"{name}.parquet"), "prefix": str(w / "results/clean" / name)}),
        ):
            if stage == "download" and Path(raw).exists():
                continue
            mb, secs = run_stage({"stage": stage, "name": name, "config": str(cfg), "workdir": str(ROOT), **extra})
            peaks.append((f"{stage} {name}", mb, secs))
            print(f"{stage:9s} {name:9s} peak RSS {mb:8.0f} MB  {secs:7.1f} s", flush=True)
    names = list(config["sources"])
    mb, secs = run_stage(
        {
            "stage": "dedup",
            "config": str(cfg),
            "inputs": {n: str(w / "results/clean" / f"{n}.parquet") for n in names},
            "outputs": {n: str(w / "results/dedup" / f"{n}.parquet") for n in names},
            "langs": {n: config["sources"][n]["lang"] for n in names},
            "clusters": str(w / "results/dedup/clusters.parquet"),
            "stats": str(w / "results/dedup/stats.json"),
        }
    )
    peaks.append(("dedup all", mb, secs))
    print(f"dedup     all       peak RSS {mb:8.0f} MB  {secs:7.1f} s")
    worst = max(peaks, key=lambda p: p[1])
    print(
        f"PEAK {worst[1]:.0f} MB ({worst[0]}) for {total / 1e9:.2f} GB of text: "
        f"{worst[1] * 1e6 / total:.3f} x the input size; target < 2048 MB: {'PASS' if worst[1] < 2048 else 'FAIL'}"
    )


if __name__ == "__main__":
    main()

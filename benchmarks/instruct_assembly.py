"""Instruction-set assembly at scale: records per second and peak memory, on the demo's sources repeated.

    python benchmarks/instruct_assembly.py --sizes 50000,100000,200000 --workdir /tmp/cama-instruct-bench

Every demo source of ``config/config.yaml`` is repeated (whole records, in order) until the
sources together give the largest size in records; each size then runs, in fresh processes,

1. **convert** every source (conversion and, for IE, synthesis: schema pass, negative
   sampling, batches, templates), reading at most its share of input records;
2. **assemble**: decontamination against the demo's IE evaluation sets and 400 held-out
   documents, exact and near dedup (``cama.clean.dedup``), split, mixture, write.

The named baseline is the I/O floor: the same records read and written back as JSON lines
(``json.loads`` + ``json.dumps``), in the same run. Rates are given per wall second and per
CPU second of the process (the machine is shared: CPU time is the steadier measure). Peak RSS (``ru_maxrss``) of each process
shows whether memory stays flat as the input grows; the last line extrapolates the time
for the seed's 1.4M records from the largest size (every phase streams, so time is linear).
Tokens are not counted (no tokenizer is trained here); ``--tokenizer`` adds them.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time
args = json.loads(sys.argv[1])
out = {}
if args["stage"] == "convert":
    from cama.instruct.convert import convert_source
    read = records = 0
    t = time.perf_counter()
    for name, (spec, raw) in args["sources"].items():
        p = args["out"] + "/" + name
        st = convert_source(name, spec, raw, p + ".jsonl", p + ".q.parquet", p + ".stats.json", args["ie"], 0)
        read += st["read"]; records += st["records"]
    out = {"seconds": time.perf_counter() - t, "read": read, "records": records}
elif args["stage"] == "assemble":
    from cama.instruct.assemble import assemble
    st = assemble(args["inputs"], args["eval_sets"], args["heldout"], args["out"] + "/train.jsonl",
                  args["out"] + "/val.jsonl", args["out"] + "/rejected.jsonl", args["out"] + "/stats.json",
                  args["settings"], args["dedup"], tokenizer=args.get("tokenizer"))
    n = sum(s["records_in"] for s in st["sources"].values())
    out = {"seconds": st["seconds"], "records": n, "phases": st["phase_seconds"],
           "train": st["train"]["records"], "dedup": st["dedup"], "decontaminated": sum(st["decontamination"]["records_by_origin"].values())}
elif args["stage"] == "floor":
    t = time.perf_counter()
    n = 0
    with open(args["out"], "w", encoding="utf-8") as w:
        for path in args["inputs"]:
            for line in open(path, encoding="utf-8"):
                w.write(json.dumps(json.loads(line), ensure_ascii=False) + "\n")
                n += 1
    out = {"seconds": time.perf_counter() - t, "records": n}
ru = resource.getrusage(resource.RUSAGE_SELF)
out["maxrss_mb"], out["cpu"] = ru.ru_maxrss / 1024, ru.ru_utime + ru.ru_stime
print("RESULT", json.dumps(out))
"""


def child(args: dict) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args)], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(proc.stderr[-3000:])
    return json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("RESULT"))[7:])


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def repeat_file(src: Path, dst: Path, k: int) -> None:
    """``src`` repeated ``k`` times as whole records (JSON documents: their records repeated)."""
    data = _open(src).read()
    inner = src.name.removesuffix(".gz")
    if inner.endswith(".json"):
        doc = json.loads(data)
        doc = {key: v * k for key, v in doc.items()} if isinstance(doc, dict) else doc * k
        data = json.dumps(doc, ensure_ascii=False).encode()
    else:
        data = (data if data.endswith(b"\n") else data + b"\n") * k
        if inner.endswith((".conll", ".txt", ".iob2")):
            data = data.replace(b"\n\n\n", b"\n\n")
    dst.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(dst, "wb", compresslevel=1) if dst.suffix == ".gz" else open(dst, "wb") as f:
        f.write(data)


def build(workdir: Path, config: dict, target: int) -> tuple[dict, int, int, dict]:
    """Repeated copies of every demo source (aux files kept whole) and their fetched folders."""
    from cama.corpus.download import download_source
    from cama.instruct.convert import convert_source

    probe = workdir / "probe"
    demo_records, demo_read = 0, {}
    for name, spec in config["instruct"]["sources"].items():
        raw = probe / "raw" / name
        download_source(name, spec, str(raw), config["download"], str(ROOT))
        st = convert_source(name, spec, raw, probe / f"{name}.jsonl", probe / f"{name}.q.parquet",
                            probe / f"{name}.json", config["instruct"]["ie"], 0)
        demo_records += st["records"]
        demo_read[name] = st["read"]
    k = math.ceil(target / demo_records)
    sources = {}
    for name, spec in config["instruct"]["sources"].items():
        uris = spec["uri"] if isinstance(spec["uri"], list) else [spec["uri"]]
        aux = set((spec.get("options") or {}).values())
        new = []
        for uri in uris:
            src = ROOT / uri
            dst = workdir / "data" / name / src.name
            if src.name in aux:
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.write_bytes(src.read_bytes())
            else:
                repeat_file(src, dst, k)
            new.append(str(dst))
        spec = copy.deepcopy(spec)
        spec["uri"] = new
        raw = workdir / "raw" / name
        download_source(name, spec, str(raw), {**config["download"], "link_local": True}, str(ROOT))
        sources[name] = (spec, str(raw))
    return sources, demo_records * k, k, demo_read


def heldout_docs(workdir: Path) -> dict:
    out = {}
    en = [json.loads(line)["text"] for line in gzip.open(ROOT / "data/demo/en/c4_demo.jsonl.gz", "rt")][:200]
    zh_doc = json.load(gzip.open(ROOT / "data/demo/zh/cmrc2018_dev.json.gz", "rt"))
    zh = [p["context"] for d in zh_doc["data"] for p in d["paragraphs"]][:200]
    for lang, texts in (("en", en), ("zh", zh)):
        path = workdir / f"heldout_{lang}.jsonl"
        path.write_text("".join(json.dumps({"text": t, "lang": lang}, ensure_ascii=False) + "\n" for t in texts))
        out[lang] = str(path)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="50000,100000,200000", help="records per run, comma-separated")
    ap.add_argument("--workdir", default="/tmp/cama-instruct-bench")
    ap.add_argument("--tokenizer", help="a sentencepiece model, to count tokens as the rule does")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from cama.config import validate_config

    config = validate_config(yaml.safe_load((ROOT / "config/config.yaml").read_text()))
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(args.workdir)
    t = time.perf_counter()
    sources, available, k, demo_read = build(work, config, max(sizes))
    print(f"inputs: demo sources repeated to ~{available:,} records in {time.perf_counter() - t:.0f} s")

    # eval sets: the demo's, built once
    from cama.corpus.download import download_source
    from cama.instruct.convert import build_eval_set

    eval_sets = {}
    for name, spec in config["evaluate"]["ie"]["sets"].items():
        raw = work / "raw_eval" / name
        download_source(name, spec, str(raw), config["download"], str(ROOT))
        eval_sets[name] = str(work / "eval" / f"{name}.jsonl")
        build_eval_set(name, spec, raw, eval_sets[name], work / "eval" / f"{name}.q.parquet",
                       work / "eval" / f"{name}.stats.json", config["instruct"]["ie"], 0)
    heldout = heldout_docs(work)

    rows = []
    for size in sizes:
        frac = size / available
        # each source reads its share of input records
        shares = {
            name: ({**spec, "max_records": max(1, round(demo_read[name] * k * frac))}, raw)
            for name, (spec, raw) in sources.items()
        }
        out = work / f"run-{size}"
        out.mkdir(parents=True, exist_ok=True)
        conv = child({"stage": "convert", "sources": shares, "out": str(out), "ie": config["instruct"]["ie"]})
        inputs = {name: [str(out / f"{name}.jsonl")] for name in shares}
        asm = child({"stage": "assemble", "inputs": inputs, "eval_sets": eval_sets, "heldout": heldout, "out": str(out),
                     "settings": config["instruct"], "dedup": config["dedup"], "tokenizer": args.tokenizer})
        floor = child({"stage": "floor", "inputs": [p for ps in inputs.values() for p in ps], "out": str(out / "floor.jsonl")})
        rows.append((size, conv, asm, floor))
        print(
            f"{asm['records']:>8,} records | convert {conv['read'] / conv['seconds']:>6,.0f} in/s, "
            f"{conv['records'] / conv['seconds']:>6,.0f} out/s ({conv['records'] / conv['cpu']:>6,.0f} per CPU-s), "
            f"RSS {conv['maxrss_mb']:.0f} MB | assemble {asm['records'] / asm['seconds']:>6,.0f} rec/s "
            f"({asm['records'] / asm['cpu']:>6,.0f} per CPU-s; {', '.join(f'{k} {v:.1f}' for k, v in asm['phases'].items())} s), "
            f"RSS {asm['maxrss_mb']:.0f} MB | JSONL round trip (baseline) {floor['records'] / floor['cpu']:>6,.0f} per CPU-s: "
            f"assemble/baseline {floor['cpu'] / floor['records'] / (asm['cpu'] / asm['records']):.2f}"
        )
    size, conv, asm, _ = rows[-1]
    per_record = conv["cpu"] / conv["records"] + asm["cpu"] / asm["records"]
    print(f"dedup at {asm['records']:,}: {asm['dedup']}; decontaminated {asm['decontaminated']:,}")
    print(f"peak RSS from {rows[0][2]['records']:,} to {asm['records']:,} records: convert "
          f"{rows[0][1]['maxrss_mb']:.0f} -> {conv['maxrss_mb']:.0f} MB, assemble {rows[0][2]['maxrss_mb']:.0f} -> {asm['maxrss_mb']:.0f} MB")
    print(f"1.4M records (the seed's set), extrapolated from CPU time: {1.4e6 * per_record / 60:.1f} min on one core "
          f"(convert + assemble; 2 cores run two sources' conversions at once)")


if __name__ == "__main__":
    main()

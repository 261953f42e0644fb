"""Weight diff make and recover: peak memory and time, ours against a stanford_alpaca-style weight_diff.

The model is the TinyLlama-1.1B shape (22 layers, hidden 2048, MLP 5632, 32 heads, 4 KV heads,
vocabulary 32000, untied) in bf16, about 2.2 GB, sharded at 500 MB, with random weights written
to a temporary folder; the "tuned" model is the base moved a little (every tensor but the norms),
as fine-tuning moves it. Side by side, each step in a fresh process:

- ``alpaca``: stanford_alpaca's ``weight_diff.py`` as CaMA's ``tools/weight_diff.py`` forked it:
  both models loaded whole in fp32, ``tuned - base`` saved with ``save_pretrained``; recovery loads
  base and diff whole in fp32, adds, checks the sum of all parameters, saves. Its recovered model
  is fp32; we count how many tensors come back bit-exact once cast to the tuned dtype.
- ``ours``: ``cama diff make`` / ``cama recover``, streamed a chunk at a time.
- ``cp``: a plain ``cp -r`` of the model folders each step reads (make: base + tuned; recover:
  base + diff), the floor for a tool that reads every byte once and writes as much.

Peak RSS is each process's own ``ru_maxrss`` (from ``wait4``), which counts the pages of mapped
files it touched. Targets (issue 14): ours <= 2 shards + 500 MB; wall time at least 0.5x the cp
of the same files (cp time / our time >= 0.5); recovery bit-exact on every tensor.

Fair timing: every timed step starts after ``sync`` has returned (outside the timing), so no step
pays for the writeback of what the previous one wrote; that ``sync``'s own time is reported as the
step's "sync after" (the writeback it left behind). ``--repeat N`` runs cp and ours interleaved N
times (make, then recover; which of the two goes first alternates), and reports every pair, its
load average, and the median ratio. Not equal work: ``cama recover`` fsyncs its output before
renaming it into place (so a crash cannot leave a complete-looking folder with lost pages), while
``cp`` and ``cama diff make`` leave their writeback to the kernel; recover's "sync after" is ~0.

    python benchmarks/diff_memory.py --workdir /tmp/cama-diffbench     # ~2.2 GB x 2 models
    python benchmarks/diff_memory.py --models /tmp/m --skip-alpaca --repeat 5
    python benchmarks/diff_memory.py --smoke                            # a 4-layer model, seconds

The alpaca baseline (run once, after the pairs) needs ~10 GB of free memory for the full shape;
``--skip-alpaca`` leaves it out.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

TINYLLAMA = dict(vocab=32000, hidden=2048, inter=5632, layers=22, heads=32, kv=4)
SMOKE = dict(vocab=32000, hidden=256, inter=688, layers=4, heads=8, kv=4)

ALPACA = r'''
import json, resource, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
a = json.loads(sys.argv[1])
torch.set_num_threads(a["threads"])

def load(path):
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)

if a["step"] == "make":  # stanford_alpaca weight_diff.make_diff
    tuned, raw = load(a["tuned"]), load(a["base"])
    sd_t, sd_r = tuned.state_dict(), raw.state_dict()
    for k in sd_t:
        sd_t[k].add_(-sd_r[k])
    tuned.save_pretrained(a["out"])
    AutoTokenizer.from_pretrained(a["tuned"]).save_pretrained(a["out"])
else:  # stanford_alpaca weight_diff.recover, integrity check included
    raw, rec = load(a["base"]), load(a["diff"])
    sd_rec, sd_raw = rec.state_dict(), raw.state_dict()
    for k in sd_rec:
        sd_rec[k].add_(sd_raw[k])
    allsum = sum(v.sum() for v in sd_rec.values())
    print("ALLSUM", float(allsum))
    rec.save_pretrained(a["out"])
    AutoTokenizer.from_pretrained(a["diff"]).save_pretrained(a["out"])
print("MAXRSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
'''


def write_models(workdir: Path, shape: dict, shard_bytes: int, seed: int = 0) -> tuple[Path, Path]:
    """base/ and tuned/ in bf16, written shard by shard (never a whole model in memory)."""
    import torch
    from safetensors.torch import save_file
    from tokenizers import Tokenizer, models
    from transformers import LlamaConfig, PreTrainedTokenizerFast

    cfg = LlamaConfig(
        vocab_size=shape["vocab"], hidden_size=shape["hidden"], intermediate_size=shape["inter"],
        num_hidden_layers=shape["layers"], num_attention_heads=shape["heads"], num_key_value_heads=shape["kv"],
        tie_word_embeddings=False, dtype="bfloat16",
    )  # fmt: skip
    h, i, kvd = shape["hidden"], shape["inter"], shape["hidden"] // shape["heads"] * shape["kv"]
    shapes = {"model.embed_tokens.weight": (shape["vocab"], h)}
    for layer in range(shape["layers"]):
        p = f"model.layers.{layer}."
        shapes.update({
            p + "self_attn.q_proj.weight": (h, h), p + "self_attn.k_proj.weight": (kvd, h),
            p + "self_attn.v_proj.weight": (kvd, h), p + "self_attn.o_proj.weight": (h, h),
            p + "mlp.gate_proj.weight": (i, h), p + "mlp.up_proj.weight": (i, h), p + "mlp.down_proj.weight": (h, i),
            p + "input_layernorm.weight": (h,), p + "post_attention_layernorm.weight": (h,),
        })  # fmt: skip
    shapes.update({"model.norm.weight": (h,), "lm_head.weight": (shape["vocab"], h)})
    groups, cur, size = [], [], 0
    for name, s in shapes.items():
        n = 2 * int(torch.tensor(s).prod())
        if cur and size + n > shard_bytes:
            groups.append(cur)
            cur, size = [], 0
        cur.append(name)
        size += n
    groups.append(cur)
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"<unk>": 0, "<s>": 1, "</s>": 2}, unk_token="<unk>")))
    out = {}
    for which in ("base", "tuned"):
        folder = workdir / which
        folder.mkdir(parents=True, exist_ok=True)
        cfg.save_pretrained(folder)
        tok.save_pretrained(folder)
        weight_map = {}
        for k, names in enumerate(groups):
            part = {}
            for name in names:
                g = torch.Generator().manual_seed(seed * 100003 + zlib.crc32(name.encode()))
                if "norm" in name:
                    t = torch.ones(shapes[name])
                else:
                    t = torch.randn(shapes[name], generator=g) * 0.02
                    if which == "tuned":  # a fine-tuning step's worth of change
                        t += torch.randn(shapes[name], generator=g) * 0.0005
                part[name] = t.to(torch.bfloat16)
            fname = f"model-{k + 1:05d}-of-{len(groups):05d}.safetensors"
            save_file(part, str(folder / fname), metadata={"format": "pt"})
            weight_map.update(dict.fromkeys(names, fname))
            del part
        total = sum(2 * int(torch.tensor(s).prod()) for s in shapes.values())
        (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))
        out[which] = folder
    return out["base"], out["tuned"]


def run(cmd: list[str]) -> dict:
    """Run ``cmd`` under ``/usr/bin/time``: wall and CPU seconds, and its own peak RSS.

    (Not ``wait4`` from this process: Linux carries a process's RSS high-water mark across
    ``exec``, so a child forked from a large parent reports the parent's RSS. ``time`` is small.)
    """
    with tempfile.NamedTemporaryFile("r", suffix=".time") as f:
        proc = subprocess.run(["/usr/bin/time", "-o", f.name, "-f", "%e %U %S %M", *cmd], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}")
        wall, user, sys_, rss_kb = f.read().split()[-4:]
    return {"wall": float(wall), "cpu": float(user) + float(sys_), "rss_mb": int(rss_kb) / 1024, "out": proc.stdout}


def weights(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.safetensors"))


def quiet() -> float:
    """``sync``: returns once the kernel has written back every dirty page; the seconds it took."""
    t = time.perf_counter()
    os.sync()
    return time.perf_counter() - t


def timed(cmd: list[str]) -> dict:
    """``run(cmd)`` after a ``sync`` (outside the timing); ``sync_after``: the writeback it left."""
    quiet()
    r = run(cmd)
    r["sync_after"] = quiet()
    return r


def cp(folders: list[Path], dest: Path) -> dict:
    """``cp -r`` of the model folders a step reads."""
    dest.mkdir(parents=True, exist_ok=True)
    r = timed(["cp", "-r", *map(str, folders), str(dest)])
    r["bytes"] = sum(f.stat().st_size for d in folders for f in d.iterdir())
    shutil.rmtree(dest)
    return r


def compare(tuned: Path, recovered: Path) -> tuple[int, int]:
    """(tensors bit-exact in the tuned dtype, tensors), reading both with safetensors, a tensor at a time."""
    import torch
    from safetensors import safe_open

    index = json.loads((tuned / "model.safetensors.index.json").read_text())["weight_map"]
    rec_files = {}
    for f in weights(recovered):
        with safe_open(f, "pt") as h:
            rec_files.update(dict.fromkeys(h.keys(), f))
    exact = 0
    for name, fname in index.items():
        with safe_open(tuned / fname, "pt") as a, safe_open(rec_files[name], "pt") as b:
            t, r = a.get_tensor(name), b.get_tensor(name)
        exact += bool(torch.equal(r.to(t.dtype).view(torch.int16), t.view(torch.int16)))
    return exact, len(index)


def free_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return float("inf")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", default=None, help="where everything goes (default: a temporary folder, removed)")
    ap.add_argument("--models", default=None, help="reuse (or make and keep) the base/ and tuned/ models here")
    ap.add_argument("--shard-mb", type=int, default=500)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1, help="pairs of cp and ours per step, interleaved (default 1)")
    ap.add_argument("--smoke", action="store_true", help="a 4-layer model: checks the script in seconds")
    ap.add_argument("--skip-alpaca", action="store_true", help="leave out the fp32 whole-model baseline")
    ap.add_argument("--json", default=None, help="also write the figures here")
    ap.add_argument("--write-models", default=None, help=argparse.SUPPRESS)  # internal: the generating child
    a = ap.parse_args()
    shape = SMOKE if a.smoke else TINYLLAMA
    shard_bytes = (50 if a.smoke else a.shard_mb) * 10**6
    if a.write_models:
        write_models(Path(a.write_models), shape, shard_bytes)
        return
    work = Path(a.workdir or tempfile.mkdtemp(prefix="cama-diffbench-"))
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    models = Path(a.models) if a.models else work / "models"
    py = sys.executable
    try:
        t0 = time.perf_counter()
        if not (models / "tuned" / "model.safetensors.index.json").is_file():
            # in a child, so that this process stays small (see run())
            subprocess.run([py, __file__, "--write-models", str(models), *(["--smoke"] if a.smoke else []),
                            "--shard-mb", str(a.shard_mb)], check=True)  # fmt: skip
        base, tuned = models / "base", models / "tuned"
        model_bytes = sum(f.stat().st_size for f in weights(tuned))
        shards = len(weights(tuned))
        cores = f"{os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable)"
        print(f"models: 2 x {model_bytes / 1e9:.2f} GB bf16, {shards} shards of <= {shard_bytes / 1e6:.0f} MB, "
              f"ready in {time.perf_counter() - t0:.0f} s; load {os.getloadavg()[0]:.1f}, {cores}")  # fmt: skip
        res: dict = {"model_bytes": model_bytes, "shards": shards, "shard_bytes": shard_bytes, "cores": cores,
                     "threads": a.threads, "load_before": os.getloadavg(), "pairs": []}  # fmt: skip
        th = ["--threads", str(a.threads)]
        diff, recovered = work / "diff", work / "ours_recovered"
        steps = {
            "make": ([base, tuned], [py, "-m", "cama.cli", "diff", "make", "--base", str(base), "--tuned", str(tuned),
                                     "--out", str(diff), "--max-shard-size", f"{shard_bytes}B", *th]),
            "recover": ([base, diff], [py, "-m", "cama.cli", "recover", "--base", str(base), "--diff", str(diff),
                                       "--out", str(recovered), *th]),
        }  # fmt: skip
        print(PAIR_HEAD)
        for rep in range(a.repeat):
            for step, (folders, cmd) in steps.items():
                shutil.rmtree(recovered, ignore_errors=True)
                order = ("cp", "ours") if rep % 2 == 0 else ("ours", "cp")
                pair = {"rep": rep + 1, "step": step, "first": order[0], "load": os.getloadavg()[0]}
                for who in order:
                    pair[who] = cp(folders, work / "cp") if who == "cp" else timed(cmd)
                pair["load_end"] = os.getloadavg()[0]
                pair["ratio"] = pair["cp"]["wall"] / pair["ours"]["wall"]
                res["pairs"].append(pair)
                print(pair_line(pair), flush=True)
        if not a.skip_alpaca and free_mb() < model_bytes * 5 / 1e6:
            print(f"alpaca baseline skipped: {free_mb():.0f} MB available, it needs about {model_bytes * 5 / 1e6:.0f}")
        elif not a.skip_alpaca:
            arg = {"base": str(base), "tuned": str(tuned), "threads": a.threads}
            res["alpaca_make"] = timed([py, "-c", ALPACA, json.dumps({**arg, "step": "make", "out": str(work / "alpaca_diff")})])
            res["alpaca_recover"] = timed([py, "-c", ALPACA, json.dumps({**arg, "step": "recover", "diff": str(work / "alpaca_diff"),
                                                                         "out": str(work / "alpaca_recovered")})])  # fmt: skip
        res["load_after"] = os.getloadavg()
        # checks, after every measurement (they load tensors in this process); each recover
        # also checked every tensor's sha256 itself
        res["ours_files_identical"] = all(filecmp.cmp(f, recovered / f.name, shallow=False) for f in weights(tuned))
        res["ours_exact"] = compare(tuned, recovered)
        res["diff_bytes"] = sum(f.stat().st_size for f in weights(diff))
        res["fixed_elements"] = json.loads((diff / "manifest.json").read_text())["stats"]["fixed_elements"]
        if "alpaca_make" in res:
            res["alpaca_diff_bytes"] = sum(f.stat().st_size for f in weights(work / "alpaca_diff"))
            res["alpaca_exact"] = compare(tuned, work / "alpaca_recovered")
        report(res)
        if a.json:
            Path(a.json).write_text(json.dumps(res, indent=1, default=str))
    finally:
        shutil.rmtree(work, ignore_errors=True)


PAIR_HEAD = (
    f"\n{'rep':>3} {'step':<8}{'first':>6}{'load':>6} | {'cp wall':>8}{'sync after':>11} | "
    f"{'ours wall':>10}{'CPU s':>7}{'RSS MB':>8}{'sync after':>11} | {'cp/ours':>7}"
)


def pair_line(p: dict) -> str:
    c, o = p["cp"], p["ours"]
    return (
        f"{p['rep']:>3} {p['step']:<8}{p['first']:>6}{p['load']:>6.1f} | {c['wall']:>8.1f}{c['sync_after']:>11.1f} | "
        f"{o['wall']:>10.1f}{o['cpu']:>7.1f}{o['rss_mb']:>8.0f}{o['sync_after']:>11.1f} | {p['ratio']:>7.2f}"
    )


def report(res: dict) -> None:
    target = 2 * res["shard_bytes"] / 1e6 + 500
    pairs = res["pairs"]
    loads = [p["load"] for p in pairs] + [p["load_end"] for p in pairs]
    print(f"\n{len(pairs) // 2} pair(s) per step, --threads {res['threads']}, {res['cores']}, "
          f"load average {min(loads):.1f}-{max(loads):.1f}")  # fmt: skip
    for step in ("make", "recover"):
        mine = [p for p in pairs if p["step"] == step]
        ratios = [p["ratio"] for p in mine]
        print(f"{step:<8} cp/ours median {statistics.median(ratios):.2f} (range {min(ratios):.2f}-{max(ratios):.2f}); "
              f"wall s: cp median {statistics.median(p['cp']['wall'] for p in mine):.1f}, "
              f"ours median {statistics.median(p['ours']['wall'] for p in mine):.1f} "
              f"(CPU {statistics.median(p['ours']['cpu'] for p in mine):.1f})")  # fmt: skip
        if f"alpaca_{step}" in res:
            r, c = res[f"alpaca_{step}"], statistics.median(p["cp"]["wall"] for p in mine)
            print(f"{'':<8} alpaca-style: wall {r['wall']:.1f} s, CPU {r['cpu']:.1f} s, peak RSS {r['rss_mb']:.0f} MB, "
                  f"sync after {r['sync_after']:.1f} s; median cp / alpaca {c / r['wall']:.2f}")  # fmt: skip
    print("(cama recover fsyncs its output before the rename; cp and cama diff make do not: see 'sync after')")
    peak = max(p["ours"]["rss_mb"] for p in pairs)
    e, n = res["ours_exact"]
    print(f"\nours: peak RSS {peak:.0f} MB; target 2 shards + 500 MB = {target:.0f} MB: {'met' if peak <= target else 'MISSED'}")
    print(f"ours: {e}/{n} tensors bit-exact, shard files byte-identical: {res['ours_files_identical']}; "
          f"diff {res['diff_bytes'] / 1e9:.2f} GB, {res['fixed_elements']} elements fixed")  # fmt: skip
    if "alpaca_exact" in res:
        ae, an = res["alpaca_exact"]
        al_peak = max(res["alpaca_make"]["rss_mb"], res["alpaca_recover"]["rss_mb"])
        print(f"alpaca: peak RSS {al_peak:.0f} MB ({al_peak / peak:.1f}x ours); {ae}/{an} tensors bit-exact in bf16; "
              f"diff {res['alpaca_diff_bytes'] / 1e9:.2f} GB (fp32)")  # fmt: skip
        params = res["model_bytes"] / 2
        print(f"13B extrapolation (x{13.0e9 / params:.1f} parameters): alpaca ~{al_peak * 13.0e9 / params / 1e3:.0f} GB; "
              f"ours ~{peak:.0f} MB (chunk-bound: independent of model and shard size)")  # fmt: skip
    print(f"load average before {res['load_before'][0]:.1f}, after {res['load_after'][0]:.1f}")


if __name__ == "__main__":
    main()

"""GPU benchmark: the generation engine against HF ``generate`` with a static cache, on the IE workload.

**Model.** Random-init TinyLlama-1.1B shape (22 layers, hidden 2048, 32 heads, 4 KV heads,
intermediate 5632, vocabulary 32000) in bf16 with SDPA, as in the anchor baseline
``../shared/baselines/gpu_generate_peers_baseline.py`` (2026-12-02), whose model set-up and
``generate`` call are copied here (``hf_static`` below) so that the baseline runs in the same
process as the engine.

**Workload: what IE evaluation really asks.** ``--n`` prompts (default 1024) of random tokens
whose lengths follow IE prompt lengths (lognormal, median 150 tokens, clipped to 48..384: an
instruction, a label schema and a sentence), each with an answer length k (lognormal, median
40 tokens, clipped to 4..256: JSON answers, most short, a few long), greedy, at most 256 new
tokens.

**Fairness: the same answers end at the same lengths on both sides.** A random model does not
emit EOS where a trained one would, so each prompt i ends after exactly k_i tokens on both:

- HF: one ``generate`` per batch with ``max_new_tokens=256`` and a logits processor that forces
  EOS as the k_i-th token of row i (one ``torch.where`` per step); HF stops a batch when all its
  rows have ended, as it does when a trained model says EOS. This is the cost a user pays.
- Engine: request i gets ``max_new_tokens=k_i``; it also ends after k_i tokens (the k-th is a
  real token instead of EOS: the same work). If the random model emits EOS by itself, both
  sides end there.

Both are credited with the same tokens (the sum of k_i, EOS included); tokens/s = that sum over
the wall time of the whole workload (prefill, padding and idle rows included). HF gets its best
shape: every batch left-padded to the workload's longest prompt, so that one compiled graph
serves all batches (``dynamic=False`` would recompile per new shape), and compilation is done
in an untimed warm-up batch. The engine's CUDA graphs are likewise captured in an untimed
first pass (its cold time is printed too).

**Greedy outputs.** In bf16 two correct implementations pick different tokens wherever the top
two logits are closer than bf16 rounding, so the check is twofold: (1) in fp32 the engine's
outputs must be identical to plain ``generate`` (dynamic cache) on a subset; (2) in bf16 the
share of identical sequences against HF static is printed, with the logit gap at each first
divergence (a gap near zero means a rounding tie, not a bug).

Variants (``--variants``; each failure is printed and the others go on):

- ``hf_static``   HF ``generate``, ``cache_implementation="static"`` (transformers compiles it),
                  at each of ``--hf-batches``: the baseline (the best batch is the reference);
- ``engine``      ``cama.generate.Engine``: continuous batching, CUDA graphs, at ``--engine-batches``;
- ``engine_eager`` the engine without CUDA graphs (what the graphs are worth);
- ``hf_cb``       transformers' own continuous batching (``init_continuous_batching``), a second peer.

Run on one GPU (about 5 minutes; prints one JSON line per run, then a table and the ratio)::

    PYTHONPATH=src python benchmarks/generate_throughput.py
    PYTHONPATH=src python benchmarks/generate_throughput.py --smoke     # CPU, tiny model, < 1 minute

Needs torch and transformers only.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from cama.generate.engine import Engine  # noqa: E402
from cama.generate.settings import Settings  # noqa: E402

SHAPE = dict(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
             num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=2048)  # fmt: skip
SMOKE_SHAPE = dict(vocab_size=2000, hidden_size=128, intermediate_size=344, num_hidden_layers=2,
                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)  # fmt: skip
EOS, PAD = 2, 0


def log(obj) -> None:
    print(json.dumps(obj), flush=True)


def build_model(shape: dict, device: str, dtype: torch.dtype):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(**shape, attn_implementation="sdpa", pad_token_id=PAD, bos_token_id=1, eos_token_id=EOS,
                      tie_word_embeddings=False)  # fmt: skip
    return LlamaForCausalLM(cfg).to(dtype).to(device).eval()


def build_tokenizer(vocab: int):
    """A real (word-level) HF tokenizer over the model's ids: the engine decodes its outputs."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    # specials spelled apart from the words: an added token "t2" would also match inside "t27220"
    words = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"t{i}": i for i in range(3, vocab)}}
    tok = Tokenizer(models.WordLevel(words, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()  # "t12 t345" -> ids 12, 345 (text round-trips)
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def workload(n: int, vocab: int, smoke: bool, seed: int = 0) -> tuple[list[list[int]], list[int], int]:
    """Prompts (token ids), answer lengths k, and the max new tokens."""
    rng = np.random.default_rng(seed)
    if smoke:
        lens = np.clip(rng.lognormal(np.log(24), 0.5, n), 8, 64).astype(int)
        ks = np.clip(rng.lognormal(np.log(8), 0.8, n), 2, 32).astype(int)
        max_new = 32
    else:
        lens = np.clip(rng.lognormal(np.log(150), 0.5, n), 48, 384).astype(int)
        ks = np.clip(rng.lognormal(np.log(40), 0.9, n), 4, 256).astype(int)
        max_new = 256
    prompts = [[1, *rng.integers(3, vocab, size=int(m) - 1).tolist()] for m in lens]
    return prompts, [int(k) for k in ks], max_new


def ended(tokens: list[int], limit: int) -> list[int]:
    """The tokens before EOS, at most ``limit`` (what both sides must agree on)."""
    out = []
    for t in tokens[:limit]:
        if t == EOS:
            break
        out.append(t)
    return out


# ----------------------------------------------------------------------------- HF generate


class ForceEOS:
    """A logits processor: row i's token number at[i] (0-based) is EOS."""

    def __init__(self, at: torch.Tensor, width: int, vocab: int):
        self.at, self.width = at, width
        self.forced = torch.full((1, vocab), float("-inf"), device=at.device)
        self.forced[0, EOS] = 0.0

    def __call__(self, input_ids, scores):
        step = input_ids.shape[1] - self.width
        return torch.where((self.at == step)[:, None], self.forced.to(scores.dtype), scores)


def hf_generate(model, prompts, ks, batch: int, max_new: int, width: int, static: bool) -> list[list[int]]:
    """HF generate over the workload in batches, left-padded to ``width`` (copied from the
    anchor baseline, plus the forced-EOS schedule). Returns each prompt's generated tokens."""
    from transformers import LogitsProcessorList

    dev = next(model.parameters()).device
    vocab = model.config.vocab_size
    outs: list[list[int]] = []
    for b in range(0, len(prompts), batch):
        ps, kk = prompts[b : b + batch], ks[b : b + batch]
        ids = torch.full((len(ps), width), PAD, dtype=torch.long)
        att = torch.zeros((len(ps), width), dtype=torch.long)
        for i, p in enumerate(ps):
            ids[i, width - len(p) :] = torch.tensor(p)
            att[i, width - len(p) :] = 1
        at = torch.tensor([k - 1 for k in kk], device=dev)
        kw = {"cache_implementation": "static"} if static else {}
        with torch.no_grad():
            out = model.generate(ids.to(dev), attention_mask=att.to(dev), max_new_tokens=max_new, do_sample=False,
                                 pad_token_id=PAD, eos_token_id=EOS,
                                 logits_processor=LogitsProcessorList([ForceEOS(at, width, vocab)]), **kw)  # fmt: skip
        outs += out[:, width:].tolist()
    return outs


def run_hf_static(model, prompts, ks, max_new, batch, static=True) -> dict:
    width = max(len(p) for p in prompts)
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    # warm-up: one full-shape batch whose rows all end after 4 tokens (compiles the decode step)
    reps = (prompts * (batch // len(prompts) + 1))[:batch]
    hf_generate(model, reps, [4] * batch, batch, max_new, width, static)
    sync()
    t = time.perf_counter()
    outs = hf_generate(model, prompts, ks, batch, max_new, width, static)
    sync()
    dt = time.perf_counter() - t
    tokens = sum(min(len(ended(o, k)) + 1, k) for o, k in zip(outs, ks, strict=True))
    return {"seconds": dt, "tokens": tokens, "outputs": [ended(o, k - 1) for o, k in zip(outs, ks, strict=True)]}


# ----------------------------------------------------------------------------- the engine


def run_engine(model, tokenizer, prompts, ks, batch: int, graphs: bool) -> dict:
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    engine = Engine(model, tokenizer, max_batch=batch, cuda_graphs=graphs, max_length=max(len(p) for p in prompts) + 256)
    settings = [Settings(max_new_tokens=k) for k in ks]
    sync()
    t = time.perf_counter()
    engine.generate(prompts, settings)  # cold: CUDA graphs captured on the way
    sync()
    cold = time.perf_counter() - t
    t = time.perf_counter()
    gens = engine.generate(prompts, settings)
    sync()
    dt = time.perf_counter() - t
    stats = dict(engine.stats)
    engine.release()
    return {"seconds": dt, "cold_seconds": cold, "tokens": sum(g.completion_tokens for g in gens),
            "outputs": [g.token_ids[: k - 1] for g, k in zip(gens, ks, strict=True)],
            "graphs": stats.get("graphs", 0), "slots": batch,
            "mean_rows_per_step": round(stats.get("decode_rows", 0) / max(stats.get("decode_steps", 1), 1), 1)}  # fmt: skip


def run_hf_cb(model, prompts, ks, max_new) -> dict:
    """transformers' continuous batching manager, per-request max_new_tokens."""
    from transformers import GenerationConfig

    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    cfg = GenerationConfig(do_sample=False, max_new_tokens=max_new, eos_token_id=EOS, pad_token_id=PAD)

    def once():
        with model.continuous_batching_context_manager(generation_config=cfg) as manager:
            ids = [manager.add_request(p, max_new_tokens=k) for p, k in zip(prompts, ks, strict=True)]
            results = {}
            while len(results) < len(ids):
                r = manager.get_result(timeout=60)
                if r is None:
                    raise RuntimeError("transformers' continuous batching returned no result for 60 s")
                if r.is_finished():
                    results[r.request_id] = r.generated_tokens
        return [results[i] for i in ids]

    once()  # warm-up
    sync()
    t = time.perf_counter()
    outs = once()
    sync()
    dt = time.perf_counter() - t
    return {"seconds": dt, "tokens": sum(min(len(ended(o, k)) + 1, k) for o, k in zip(outs, ks, strict=True)),
            "outputs": [ended(o, k - 1) for o, k in zip(outs, ks, strict=True)]}  # fmt: skip


# ----------------------------------------------------------------------------- checks


def agreement(a: list[list[int]], b: list[list[int]]) -> dict:
    same = sum(x == y for x, y in zip(a, b, strict=True))
    firsts = []
    for x, y in zip(a, b, strict=True):
        n = min(len(x), len(y))
        firsts.append(next((i for i in range(n) if x[i] != y[i]), n) / max(n, 1))
    return {"identical": same, "of": len(a), "share": round(same / len(a), 4),
            "mean_agreeing_prefix": round(float(np.mean(firsts)), 4)}  # fmt: skip


def divergence_gaps(model, prompts, ref, got, limit: int = 16) -> list[float]:
    """At the first token where ``got`` leaves ``ref``: logit(ref token) - logit(got token) of a
    plain forward pass over the prompt and the common prefix (near 0: a rounding tie)."""
    dev = next(model.parameters()).device
    gaps = []
    for p, r, g in zip(prompts, ref, got, strict=True):
        if r == g or len(gaps) >= limit:
            continue
        i = next((j for j in range(min(len(r), len(g))) if r[j] != g[j]), None)
        if i is None:
            continue
        ids = torch.tensor([p + r[:i]], device=dev)
        with torch.no_grad():
            logits = model(ids).logits[0, -1].float()
        gaps.append(round(float(logits[r[i]] - logits[g[i]]), 4))
    return gaps


def fp32_identity(model, tokenizer, prompts, ks, n: int, max_new: int) -> dict:
    """The engine (fp32, graphs as configured) against plain generate (dynamic cache), fp32."""
    m32 = copy.deepcopy(model).float()
    ps, kk = prompts[:n], [min(k, 48) for k in ks[:n]]
    width = max(len(p) for p in ps)
    ref = hf_generate(m32, ps, kk, len(ps), max(kk), width, static=False)
    ref = [ended(o, k - 1) for o, k in zip(ref, kk, strict=True)]
    eng = Engine(m32, tokenizer, max_batch=16)
    got = [g.token_ids[: k - 1] for g, k in zip(eng.generate(ps, [Settings(max_new_tokens=k) for k in kk]), kk, strict=True)]
    eng.release()
    res = agreement(ref, got)
    res["gaps"] = divergence_gaps(m32, ps, ref, got)
    del m32, eng
    return res


# ----------------------------------------------------------------------------- driver


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="CPU, a tiny model, a small workload (< 1 minute)")
    ap.add_argument("--n", type=int, help="prompts (default 1024; smoke 48)")
    ap.add_argument("--variants", help="default hf_static,engine,engine_eager,hf_cb (smoke: without hf_cb, slow on CPU)")
    ap.add_argument("--hf-batches", default=None, help="HF batch sizes (default 256,512; smoke 16,48)")
    ap.add_argument("--engine-batches", default=None, help="engine slots (default 256,512; smoke 16)")
    ap.add_argument("--check-fp32", type=int, default=None, help="prompts in the fp32 identity check (default 32; smoke 8)")
    ap.add_argument("--out", help="write all results to this JSON file")
    a = ap.parse_args(argv)
    smoke = a.smoke
    device = "cpu" if smoke or not torch.cuda.is_available() else "cuda"
    if device == "cpu" and not smoke:
        print("no GPU: use --smoke for the CPU check", file=sys.stderr)
        return 2
    if smoke:
        torch.set_num_threads(1)
    n = a.n or (48 if smoke else 1024)
    hf_batches = [int(x) for x in (a.hf_batches or ("16,48" if smoke else "256,512")).split(",")]
    engine_batches = [int(x) for x in (a.engine_batches or ("16" if smoke else "256,512")).split(",")]
    n_check = a.check_fp32 if a.check_fp32 is not None else (8 if smoke else 32)
    variants = (a.variants or ("hf_static,engine,engine_eager" if smoke else "hf_static,engine,engine_eager,hf_cb")).split(",")
    shape = SMOKE_SHAPE if smoke else SHAPE
    model = build_model(shape, device, torch.float32 if smoke else torch.bfloat16)
    tokenizer = build_tokenizer(shape["vocab_size"])
    prompts, ks, max_new = workload(n, shape["vocab_size"], smoke)
    head = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "torch": torch.__version__,
            "transformers": __import__("transformers").__version__, "prompts": n, "answer_tokens": sum(ks),
            "mean_prompt": round(float(np.mean([len(p) for p in prompts])), 1), "mean_answer": round(float(np.mean(ks)), 1),
            "max_prompt": max(len(p) for p in prompts), "max_new_tokens": max_new}  # fmt: skip
    log({"workload": head})

    runs: list[dict] = []

    def measure(name: str, fn, **params):
        if device == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        try:
            r = fn()
        except Exception as e:  # report and go on with the other variants
            r = {"error": f"{type(e).__name__}: {e}"[:500]}
        r.update(variant=name, **params)
        if "seconds" in r:
            r["tokens_per_s"] = round(r["tokens"] / r["seconds"])
            r["seconds"] = round(r["seconds"], 2)
        if device == "cuda":
            r["peak_mem_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        runs.append(r)
        log({k: v for k, v in r.items() if k != "outputs"})

    if "hf_static" in variants:
        for b in hf_batches:
            measure("hf_static", lambda b=b: run_hf_static(model, prompts, ks, max_new, b), batch=b)
    for b in engine_batches:
        if "engine" in variants:
            measure("engine", lambda b=b: run_engine(model, tokenizer, prompts, ks, b, graphs=True),
                    batch=b, cuda_graphs=device == "cuda")  # fmt: skip
    if "engine_eager" in variants:
        b = engine_batches[0]
        measure("engine_eager", lambda: run_engine(model, tokenizer, prompts, ks, b, graphs=False), batch=b, cuda_graphs=False)
    if "hf_cb" in variants:  # on a copy: it switches the model's attention to its paged kernels
        measure("hf_cb", lambda: run_hf_cb(copy.deepcopy(model), prompts, ks, max_new), batch="auto")

    ok = [r for r in runs if "tokens_per_s" in r]
    hf = [r for r in ok if r["variant"] == "hf_static"]
    ours = [r for r in ok if r["variant"] == "engine"]
    summary: dict = {}
    if hf:
        best_hf = max(hf, key=lambda r: r["tokens_per_s"])
        for r in ok:
            if r is not best_hf:
                r["agreement_with_hf_static"] = agreement(best_hf["outputs"], r["outputs"])
        summary["hf_static_best"] = {"batch": best_hf["batch"], "tokens_per_s": best_hf["tokens_per_s"],
                                     "peak_mem_gb": best_hf.get("peak_mem_gb")}  # fmt: skip
    if ours:
        best = max(ours, key=lambda r: r["tokens_per_s"])
        summary["engine_best"] = {"batch": best["batch"], "tokens_per_s": best["tokens_per_s"],
                                  "peak_mem_gb": best.get("peak_mem_gb"), "cold_seconds": best.get("cold_seconds")}  # fmt: skip
        if hf:
            summary["ratio_engine_over_hf_static"] = round(best["tokens_per_s"] / best_hf["tokens_per_s"], 2)
            summary["bf16_agreement"] = best["agreement_with_hf_static"] if not smoke else best.get("agreement_with_hf_static")
            summary["bf16_divergence_gaps"] = divergence_gaps(model, prompts, best_hf["outputs"], best["outputs"])
    if n_check:
        try:
            summary["fp32_identity_vs_plain_generate"] = fp32_identity(model, tokenizer, prompts, ks, n_check, max_new)
        except Exception as e:
            summary["fp32_identity_vs_plain_generate"] = {"error": f"{type(e).__name__}: {e}"[:500]}

    print("\n| variant | batch | tokens/s | seconds | peak GB | identical to HF static |")
    print("|---|---|---|---|---|---|")
    for r in runs:
        ag = r.get("agreement_with_hf_static")
        cell = f"{ag['identical']}/{ag['of']}" if ag else ("reference" if hf and r is best_hf else "")
        print(f"| {r['variant']} | {r.get('batch')} | {r.get('tokens_per_s', r.get('error', ''))} | {r.get('seconds', '')} "
              f"| {r.get('peak_mem_gb', '')} | {cell} |")  # fmt: skip
    log({"summary": summary})
    if "ratio_engine_over_hf_static" in summary:
        s = summary
        print(f"\nRATIO engine / HF static (best batch each): {s['ratio_engine_over_hf_static']}x "
              f"({s['engine_best']['tokens_per_s']} tokens/s at {s['engine_best']['batch']} slots, "
              f"{s['engine_best'].get('peak_mem_gb')} GB; HF {s['hf_static_best']['tokens_per_s']} tokens/s at batch "
              f"{s['hf_static_best']['batch']}, {s['hf_static_best'].get('peak_mem_gb')} GB)", flush=True)  # fmt: skip
    if a.out:
        Path(a.out).write_text(json.dumps({"workload": head, "runs": [{k: v for k, v in r.items() if k != "outputs"} for r in runs],
                                           "summary": summary}, indent=1))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

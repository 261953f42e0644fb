"""The model card: the Hub's YAML metadata, then what the weights are, how to get and run them,
how they score, and what data they saw, with licences.

The metadata is built with ``huggingface_hub.ModelCardData`` (the Hub's own schema, with
``model-index`` results); the text is plain Markdown written here. Nothing in the card comes
from the environment: it is made from the stage's input files and the ``publish.card`` config.

The scores are those of the published model, found in each evaluation JSON by its path
(``paths: {name: {model, adapter}}``, as ``eval/bpb.json`` and ``eval/ie.json`` record them); a file that did not score it
adds nothing to the metadata.
Bits per byte (``models.<name>.<lang>.bpb``) and every ``f1`` under the published model's
entry become model-index results; the tables in the text show every model, for comparison.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

UNKNOWN_LICENCE = "unknown (see the source)"


def published_model_name(result: dict, tuned: str | os.PathLike) -> str | None:
    """The name under which an evaluation JSON scored the published model (None: it did not)."""
    want = os.path.normpath(os.path.abspath(tuned))
    for name, m in result.get("paths", {}).items():
        # a model with an adapter on top ("lora") is not the published folder, though it names it
        if not m["adapter"] and os.path.normpath(os.path.abspath(m["model"])) == want:
            return name
    return None


def _leaves(tree, path=()):
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _leaves(v, (*path, str(k)))
    elif isinstance(tree, int | float) and not isinstance(tree, bool):
        yield path, float(tree)


def eval_metrics(evals: list[str | os.PathLike], tuned: str | os.PathLike) -> tuple[list[dict], list[tuple[str, list[str], list[list]]]]:
    """(model-index results of the published model, Markdown tables of every model) from the eval JSONs."""
    results, tables = [], []
    for path in evals:
        data = json.loads(Path(path).read_text())
        models = data.get("models", {})
        if not isinstance(models, dict) or not models:
            continue
        me = published_model_name(data, tuned)
        rows: dict[tuple, dict[str, float]] = {}
        for name, tree in models.items():
            for leaf, value in _leaves(tree):
                if leaf[-1] in ("bpb", "f1", "precision", "recall", "p", "r"):
                    rows.setdefault(leaf, {})[name] = value
        if not rows:
            continue
        names = list(models)
        header = ["metric", *[f"{n} (published)" if n == me else n for n in names]]
        body = [[" / ".join(leaf), *[_fmt(rows[leaf].get(n)) for n in names]] for leaf in sorted(rows)]
        tables.append((Path(path).name, header, body))
        for leaf, per in sorted(rows.items()):
            if me in per and leaf[-1] in ("bpb", "f1"):
                dataset = " / ".join(leaf[:-1]) or Path(path).stem
                kind = "bits_per_byte" if leaf[-1] == "bpb" else "f1"
                results.append(
                    {
                        "task_type": "text-generation" if kind == "bits_per_byte" else "information-extraction",
                        "dataset_type": f"cama/{Path(path).stem}",
                        "dataset_name": f"held-out {dataset}" if kind == "bits_per_byte" else dataset,
                        "dataset_config": dataset,  # the Hub groups results by type and config
                        "metric_type": kind,
                        "metric_name": "bits per byte (lower is better)" if kind == "bits_per_byte" else "F1",
                        "metric_value": round(per[me], 4),
                    }
                )
    return results, tables


def _fmt(v) -> str:
    return "" if v is None else f"{v:.4f}"


def md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def corpus_section(corpus: dict | None, licences: dict[str, str]) -> str:
    """The funnel per source (read, normalised, filtered, deduplicated, tokens) with each licence."""
    if not corpus:
        return "The corpus statistics were not given to this stage.\n"
    from cama.report.corpus import funnel_counts

    sources = corpus["sources"]
    norm = [json.loads(Path(p).read_text()) for p in corpus["normalise"]]
    filt = [json.loads(Path(p).read_text()) for p in corpus["filter"]]
    dedup = json.loads(Path(corpus["dedup"]).read_text())
    counts = funnel_counts(sources, norm, filt, dedup)
    tokens: dict[str, int] = {}
    langs: dict[str, str] = {}
    if corpus.get("blend"):
        for d in json.loads(Path(corpus["blend"]).read_text()).get("datasets", []):
            tokens[d.get("source", "")] = tokens.get(d.get("source", ""), 0) + int(d.get("tokens", 0))
            langs[d.get("source", "")] = d.get("lang", "")
    steps = ("read", "normalised", "filtered", "deduplicated")
    rows = []
    for s in sources:
        c = counts[s]["docs"]
        rows.append([s, langs.get(s, ""), *[f"{c[k]:,}" for k in steps], f"{counts[s]['bytes']['deduplicated'] / 1e6:,.1f}",
                     f"{tokens[s]:,}" if s in tokens else "", licences.get(s, UNKNOWN_LICENCE)])  # fmt: skip
    total = [sum(counts[s]["docs"][k] for s in sources) for k in steps]
    mb = sum(counts[s]["bytes"]["deduplicated"] for s in sources) / 1e6
    rows.append(["**all**", "", *[f"{v:,}" for v in total], f"{mb:,.1f}", f"{sum(tokens.values()):,}" if tokens else "", ""])
    head = ["source", "lang", "documents read", "normalised", "kept by filters", "after dedup", "MB after dedup",
            "tokens packed", "licence"]  # fmt: skip
    return (
        "Continued pretraining saw these corpora. Documents left after each step of the pipeline "
        "(normalise, quality and toxicity filters, exact and MinHash dedup), and the tokens packed for training:\n\n"
        + md_table(head, rows)
        + "\n"
    )


def instruct_section(stats_path: str | os.PathLike | None, licences: dict[str, str]) -> str:
    """The instruction data per source, from the instruct stage's ``stats.json``: where each
    record went (decontaminated, duplicate, dropped by the mixture, validation, training), with
    the source's task, language and licence."""
    if not stats_path:
        return "No instruction data in this release.\n"
    stats = json.loads(Path(stats_path).read_text())
    cells: dict[str, dict] = {}
    for row in stats.get("table", []):
        c = cells.setdefault(row["source"], {"tasks": set(), "langs": set(), "tokens": 0})
        c["tasks"].add(row["task"])
        c["langs"].add(row["lang"])
        c["tokens"] += row["tokens"]
    rows = []
    for source, st in stats.get("sources", {}).items():
        c = cells.get(source, {"tasks": set(), "langs": set(), "tokens": 0})
        rows.append([source, ", ".join(sorted(c["tasks"])), ", ".join(sorted(c["langs"])), f"{st['records_in']:,}",
                     f"{st['decontaminated']:,}", f"{st['duplicate_exact'] + st['duplicate_near']:,}",
                     f"{st['mixture_dropped']:,}", f"{st['val']:,}", f"{st['train']:,}", f"{c['tokens']:,}",
                     licences.get(source, UNKNOWN_LICENCE)])  # fmt: skip
    head = ["source", "task", "lang", "records", "decontaminated", "duplicates", "dropped by the mixture",
            "validation", "training (unique)", "training tokens", "licence"]  # fmt: skip
    train = stats.get("train", {})
    return (
        "Instruction tuning saw these sources; every record is counted once, where it went "
        "(decontaminated: overlapping the evaluation sets or held-out text):\n\n"
        + md_table(head, rows)
        + f"\n\nTraining set: {train.get('records', 0):,} records ({train.get('tokens', 0):,} tokens, with the mixture's "
        f"repeats); validation: {stats.get('val', {}).get('records', 0):,} records.\n"
    )


def render_card(
    *,
    manifest: dict,
    settings: dict,
    has_adapter: bool,
    evals: list[str | os.PathLike],
    tuned: str | os.PathLike,
    corpus: dict | None = None,
    instruct_stats: str | os.PathLike | None = None,
    repo_id: str | None = None,
) -> str:
    """The README.md of the hub-ready folder."""
    from huggingface_hub import EvalResult, ModelCardData

    name = settings["model_name"]
    repo = repo_id or f"<org>/{name}"
    licences = settings.get("data_licenses", {})
    results, tables = eval_metrics(evals, tuned)
    data = ModelCardData(
        model_name=name,
        language=settings["language"],
        license=settings["license"],
        base_model=settings.get("base_model") or None,
        tags=settings["tags"],
        datasets=settings.get("datasets") or None,
        library_name="transformers",
        pipeline_tag="text-generation",
        eval_results=[EvalResult(**r) for r in results] or None,
    )
    stats = manifest["stats"]
    base_desc = f"`{settings['base_model']}`" if settings.get("base_model") else f"the base model `{manifest['base']['folder']}`"
    kinds = ", ".join(f"{v} {k}" for k, v in stats["kinds"].items())
    diff_dtypes = sorted({e["diff"]["dtype"] for e in manifest["tensors"] if "diff" in e})
    tuned_dtypes = sorted({e["dtype"] for e in manifest["tensors"]})
    adapter_line = (
        "- `lora/`: the LoRA adapter (peft). It applies to the continued-pretraining model, before merging; "
        "the diff already contains it merged."
        if has_adapter
        else "- No LoRA adapter in this release."
    )
    eval_text = (
        "\n\n".join(f"From `{fname}`:\n\n" + md_table(h, rows) for fname, h, rows in tables)
        if tables
        else "No evaluation results were given to this stage."
    )
    sections = [
        f"# {name}",
        "A Chinese-English bilingual LLaMA, built by the cama pipeline the way "
        "[CaMA/KnowLM](https://github.com/zjunlp/KnowLM) was: continued pretraining of a LLaMA base on Chinese, "
        "English and code, then instruction tuning. Every step of data preparation is published and rerunnable.",
        "## What the weights are",
        f"**These weights are a diff, not a model.** `diff/` holds tuned − base for every tensor, against {base_desc}; "
        "on their own they are useless. Recover the full model from the base and the diff (below): the result is "
        "bit-for-bit the tuned model, shard for shard.",
        f"- `diff/`: {stats['tensors']} tensors ({kinds}) in {stats['diff_shards']} safetensors shard(s), "
        f"{stats['diff_bytes'] / 1e6:,.1f} MB; diff dtype {', '.join(diff_dtypes) or 'none'}, tuned dtype "
        f"{', '.join(tuned_dtypes)}. `diff/manifest.json` holds the sha256 of every diff and every tuned tensor, "
        "a fingerprint of the base (the sha256 of each of its tensors), the tokenizer hash and the settings that "
        "made it.",
        adapter_line,
        "- the tokenizer, with the chat template that training used (`tokenizer_config.json`, `chat_template.jinja`).",
        "- `SHA256SUMS`: every file of this repository (`sha256sum -c SHA256SUMS`).",
        "## Get the model: two commands",
        "With the `cama` package installed, and the base model as a local Hugging Face folder (safetensors):",
        "```bash\n"
        f"cama download --repo-id {repo} --recover --base /path/to/base --out {name}\n"
        f"cama chat {name}\n"
        "```",
        "`cama download` fetches the repository (an interrupted download resumes), checks `SHA256SUMS`, then "
        "recovers: it first checks the base against the fingerprint (a wrong base is named, tensor and likely "
        "cause, before anything is written), rebuilds each tensor a chunk at a time (memory stays at a few "
        "hundred MB whatever the model size) and verifies every tensor's sha256. Only `diff/`: "
        f"`cama download --repo-id {repo} --only diff`; then `cama recover --base /path/to/base --diff diff --out {name}`.",
        "The recovered folder is a plain Hugging Face model with its tokenizer and chat template:",
        "```python\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        f'model = AutoModelForCausalLM.from_pretrained("{name}")\n'
        f'tok = AutoTokenizer.from_pretrained("{name}")\n'
        'ids = tok.apply_chat_template([{"role": "user", "content": "你好"}], add_generation_prompt=True, return_tensors="pt")\n'
        "print(tok.decode(model.generate(ids, max_new_tokens=64)[0]))\n"
        "```",
        f"It serves with vLLM as it is (`vllm serve {name}`), the chat template included.",
        "## Evaluation",
        eval_text,
        "## Training data",
        corpus_section(corpus, licences),
        instruct_section(instruct_stats, licences),
        "## Licence",
        f"The diff and the adapter: {settings['license']}. Using them needs the base model, under its own licence. "
        "Text from share-alike sources (CC BY-SA) is in the training data; see the table above.",
    ]
    return f"---\n{data.to_yaml()}\n---\n\n" + "\n\n".join(s.strip("\n") for s in sections) + "\n"

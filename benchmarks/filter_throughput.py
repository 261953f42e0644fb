"""Heuristic filters: cama vs datatrove 0.10.1, side by side in one process, same documents.

The web kind's chains (config/config.yaml's filter section, which the other kinds modify):
en   GopherQuality -> GopherRepetition -> C4Quality (datatrove defaults, language eng)
zh   FineWeb-2 cmn_Hani: GopherRepetition -> FineWebQuality -> GopherQuality, thresholds of
     FineWeb-2's configs/cmn_Hani.yml (as ../shared/baselines/bench_datatrove.py configures them)

Prints, per language: MB/s per core (CPU time, one process) for both chains over the corpus
of benchmarks/corpus.py repeated to --target-mb, the ratio, and the keep/drop agreement on
the unique documents, per filter (each run alone on the original text) and for the chain.
Our full chain (with the toxicity and, for zh, ChineseWebText filters) is timed too. Every
document is scored by every filter of our chain (scores are stored apart from selection), while
datatrove stops at the first rejection. Agreement is also printed for the chain with the Gopher
rules as the paper defines them (datatrove_compat: false, what the curated kinds run), which is
the measured effect of that choice.

Anchors (ANCHORS.md, 2 cores): datatrove en 0.09 MB/s/core, zh 0.10 MB/s/core.
Targets: ours ≥ 5× datatrove on en, ≥ 3× on zh; agreement ≥ 98 %.

usage: python benchmarks/filter_throughput.py [--lang en zh] [--target-mb 2]
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corpus  # noqa: E402

from cama.clean.filters import build_chain  # noqa: E402
from cama.config import load_config  # noqa: E402

CONFIG = Path(__file__).resolve().parents[1] / "config" / "config.yaml"
# FineWeb-2 configs/cmn_Hani.yml, as in ../shared/baselines/bench_datatrove.py
FW2_CMN = dict(
    dup_line_frac=0.287,
    dup_n_grams=((5, 0.198), (6, 0.182), (7, 0.167), (8, 0.154), (9, 0.14), (10, 0.127)),
    top_n_grams=((2, 0.256), (3, 0.201), (4, 0.171)),
    line_punct_thr=0.106,
    new_line_ratio=0.178,
    max_avg_word_length=5,
    min_avg_word_length=1,
    max_non_alpha_words_ratio=0.735,
    stopwords=["的", "年", "在", "月", "是", "和", "日", "了", "於", "·", "為", "有", "被", "人", "中", "为",
               "他", "與", "後", "也", "而", "由"],
)  # fmt: skip

# the filters both implement, in datatrove's chain order: (ours, datatrove class name)
PAIRS = {
    "en": [("gopher_quality", "GopherQualityFilter"), ("gopher_repetition", "GopherRepetitionFilter"),
           ("c4_quality", "C4QualityFilter")],
    "zh": [("gopher_repetition", "GopherRepetitionFilter"), ("fineweb_quality", "FineWebQualityFilter"),
           ("gopher_quality", "GopherQualityFilter")],
}  # fmt: skip


def datatrove_filters(lang: str) -> list:
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    if lang == "en":
        return [
            GopherQualityFilter(language="eng"),
            GopherRepetitionFilter(language="eng"),
            C4QualityFilter(language="eng"),
        ]
    c, lang3 = FW2_CMN, "cmn_Hani"
    return [
        GopherRepetitionFilter(dup_line_frac=c["dup_line_frac"], top_n_grams=c["top_n_grams"],
                               dup_n_grams=c["dup_n_grams"], language=lang3),
        FineWebQualityFilter(line_punct_thr=c["line_punct_thr"], new_line_ratio=c["new_line_ratio"], language=lang3),
        GopherQualityFilter(min_avg_word_length=c["min_avg_word_length"], max_avg_word_length=c["max_avg_word_length"],
                            max_non_alpha_words_ratio=c["max_non_alpha_words_ratio"], stop_words=c["stopwords"],
                            language=lang3),
    ]  # fmt: skip


def our_settings(lang: str, only: list[str] | None) -> dict:
    settings = copy.deepcopy(load_config(CONFIG)["filter"][lang])
    if only is None:
        return settings
    return {name: settings[name] for name in only}


def dt_keep(f, text: str) -> bool:
    from datatrove.data import Document

    r = f.filter(Document(text=text, id="x"))
    return bool(r[0] if isinstance(r, tuple) else r)


def dt_chain_keep(filters, text: str) -> bool:
    from datatrove.data import Document

    d = Document(text=text, id="x")
    for f in filters:
        r = f.filter(d)
        if not (r[0] if isinstance(r, tuple) else r):
            return False
    return True


def timed(fn, docs):
    c0, t0 = time.process_time(), time.perf_counter()
    kept = sum(1 for t in docs if fn(t))
    return kept, time.process_time() - c0, time.perf_counter() - t0


def run(lang: str, target_mb: float) -> dict:
    from datatrove.utils.text import split_into_parts

    base = corpus.load(lang)
    texts = corpus.repeat_to(base, target_mb)
    mb = corpus.nbytes(texts) / 1e6
    names = [ours for ours, _ in PAIRS[lang]]
    print(f"\n== {lang}: {len(base)} unique docs ({corpus.nbytes(base) / 1e6:.2f} MB); timed on {len(texts)} docs, "
          f"{mb:.2f} MB | loadavg {os.getloadavg()[0]:.2f}")  # fmt: skip

    # agreement, per filter alone and for the chain, on the unique documents
    dts = datatrove_filters(lang)
    dt_chain_keep(dts, base[0])  # load spaCy / jieba outside any timing
    print(f"{'filter':22s} {'agree':>8s} {'dt kept':>8s} {'ours kept':>9s}")
    for (ours_name, dt_name), f in zip(PAIRS[lang], dts, strict=True):
        ours = build_chain(lang, our_settings(lang, [ours_name]))
        split_into_parts.cache_clear()
        a = [dt_keep(f, t) for t in base]
        b = [ours(t)[0] is None for t in base]
        agree = sum(x == y for x, y in zip(a, b, strict=True)) / len(base)
        print(
            f"{ours_name:22s} {100 * agree:7.2f}% {sum(a):8d} {sum(b):9d}   (datatrove {dt_name})"
        )
    ours = build_chain(lang, our_settings(lang, names))
    a = [dt_chain_keep(datatrove_filters(lang), t) for t in base]
    b = [ours(t)[0] is None for t in base]
    chain_agree = sum(x == y for x, y in zip(a, b, strict=True)) / len(base)
    print(f"{'CHAIN':22s} {100 * chain_agree:7.2f}% {sum(a):8d} {sum(b):9d}")
    # the same chain with the Gopher rules as the paper defines them (the curated kinds' choice)
    paper = our_settings(lang, names)
    for name in ("gopher_quality", "gopher_repetition"):
        paper[name]["datatrove_compat"] = False
    p = [build_chain(lang, paper)(t)[0] is None for t in base]
    paper_agree = sum(x == y for x, y in zip(a, p, strict=True)) / len(base)
    print(f"{'CHAIN, paper':22s} {100 * paper_agree:7.2f}% {sum(a):8d} {sum(p):9d}   (datatrove_compat: false)")

    # throughput over the repeated corpus
    dts = datatrove_filters(lang)
    split_into_parts.cache_clear()
    dk, dcpu, dwall = timed(lambda t: dt_chain_keep(dts, t), texts)
    ours = build_chain(lang, our_settings(lang, names))
    ok, ocpu, owall = timed(lambda t: ours(t)[0] is None, texts)
    full = build_chain(lang, our_settings(lang, None))
    fk, fcpu, fwall = timed(lambda t: full(t)[0] is None, texts)
    print(
        f"datatrove chain        {mb / dcpu:6.3f} MB/s/core ({dcpu:.1f} s cpu, {dwall:.1f} s wall), kept {dk}"
    )
    print(
        f"cama, same filters     {mb / ocpu:6.3f} MB/s/core ({ocpu:.1f} s cpu, {owall:.1f} s wall), kept {ok}"
    )
    print(
        f"cama, full {lang} chain   {mb / fcpu:6.3f} MB/s/core ({fcpu:.1f} s cpu), kept {fk}: {', '.join(full_names(full))}"
    )
    print(f"RATIO {lang}: cama / datatrove = {dcpu / ocpu:.1f}x (same filters), {dcpu / fcpu:.1f}x (full chain); "
          f"chain agreement {100 * chain_agree:.2f}%")  # fmt: skip
    return {"ratio": dcpu / ocpu, "agreement": chain_agree}


def full_names(chain) -> list[str]:
    return [f.name for f in chain.filters]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lang", nargs="+", default=["en", "zh"], choices=["en", "zh"])
    ap.add_argument(
        "--target-mb", type=float, default=2.0, help="size of the repeated corpus that is timed"
    )
    a = ap.parse_args()
    from importlib.metadata import version

    print(f"datatrove {version('datatrove')}, spacy {version('spacy')}, jieba {version('jieba')}, "
          f"rjieba {version('rjieba')}")  # fmt: skip
    for lang in a.lang:
        run(lang, a.target_mb)


if __name__ == "__main__":
    main()

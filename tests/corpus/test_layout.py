"""Layout before filtering: wrapped books become paragraphs, boilerplate is set aside and counted."""

from __future__ import annotations

import bz2
import re
from pathlib import Path

import mwparserfromhell
import pyarrow.parquet as pq

from cama.corpus.layout import apply, is_hard_wrapped, strip_wiki, unwrap, wikitext_to_text
from cama.corpus.normalise import normalise_source
from cama.corpus.readers import Record, iter_records

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "data" / "demo"
BOOK = bz2.decompress((DEMO / "en" / "gutenberg_972.txt.bz2").read_bytes()).decode().replace("\r\n", "\n")


def test_a_wrapped_gutenberg_block_becomes_whole_paragraphs():
    block = BOOK[200_000:206_000]
    paragraphs = [p for p in re.split(r"\n[ \t]*\n", block) if p.strip()]
    out = unwrap(block)
    assert is_hard_wrapped(block) and out.lines_joined > 50
    new = [p for p in re.split(r"\n[ \t]*\n", out.text) if p.strip()]
    assert len(new) == len(paragraphs)  # paragraphs stay apart
    # each prose paragraph is one line now, with its words unchanged
    for old, p in zip(paragraphs, new, strict=True):
        assert p.split() == old.split()
        if len(old.splitlines()) > 1 and not old.startswith(" "):
            assert "\n" not in p.strip()
    assert "human knowledge.\n\nMAGNIFICENT, adj." in out.text


def test_verse_and_short_lines_keep_their_breaks():
    verse = (
        "  Lo! the Mayor of Jerusalem\n  Rode forth upon his ass, and all\n"
        "  The people hailed him as he came.\n"
    )
    prose = BOOK[200_000:203_000]
    out = unwrap(prose + "\n\n" + verse)
    assert verse.strip("\n") in out.text
    toc = "CHAPTER I. DISCUSSION AND BED\nCHAPTER II. A MORNING BATH\nCHAPTER III. THE GUEST HOUSE"
    assert unwrap(prose + "\n\n" + toc).text.endswith(toc)


def test_text_that_is_not_wrapped_is_left_alone():
    # one paragraph a line (the Analects, WikiText): nothing to join
    text = "子曰：学而时习之，不亦说乎？有朋自远方来，不亦乐乎？人不知而不愠，不亦君子乎？\n" * 3 + "有子曰：其为人也孝弟。"
    assert unwrap(text).text == text and unwrap(text).lines_joined == 0
    assert unwrap("one line only").text == "one line only"


def test_chinese_wrapped_lines_join_without_a_space_and_hyphens_close_up():
    line = "这是一本被硬换行的中文小说，每一行都在同样的宽度上被截断了，所以需要重新连"
    text = "\n".join([line] * 6) + "\n接起来。"
    out = unwrap(text).text
    assert "\n" not in out and " " not in out
    wrapped = ("The soap-works with their smoke-vomiting chimneys were gone; the engineer's soap-\n"
               "works were gone too, and the lead-works, and all of the noise that came with them, and\n"
               "then some more of the same kind of long wrapped line that fills the width here.\n") * 2
    assert "soap-works were gone too" in unwrap(wrapped).text


def test_wiki_category_lines_and_tails_are_removed_and_kept():
    out = strip_wiki("北京是中华人民共和国的首都。\n分类：中国城市\n第二段。分类：首都 | 北京\nCategory: Capitals")
    assert out.text == "北京是中华人民共和国的首都。\n第二段。"
    assert [r for r, _ in out.removed] == ["layout.wiki_category"] * 3
    assert out.removed[1][1].strip() == "分类：首都 | 北京"
    assert strip_wiki("Categorical data are discussed here.").removed == []


def test_wikitext_markup_refs_categories_and_headings():
    wiki = (
        "'''Du Fu''' was a [[China|Chinese]] poet.<ref>Owen 1981</ref> He wrote.\n"
        "== Life ==\nHe was born near [[Luoyang]].\n[[File:DuFu.jpg|thumb|A portrait]]\n"
        "[[Category:Tang dynasty poets]]\n[[分类:唐朝诗人]]\n"
    )
    out = wikitext_to_text(wiki, mwparserfromhell)
    assert out.text == "Du Fu was a Chinese poet. He wrote.\n\nLife\n\nHe was born near Luoyang."
    assert sorted(r for r, _ in out.removed) == [
        "layout.wiki_category", "layout.wiki_category", "layout.wiki_file", "layout.wiki_ref",
    ]  # fmt: skip


def test_gutenberg_header_and_footer_are_records_of_their_own(spec_of):
    spec = spec_of(lang="en", format="txt", split="block", block_bytes=2000)
    plain = [r for r in iter_records(DEMO / "en" / "gutenberg_972.txt.bz2", spec) if isinstance(r, Record)]
    spec["layout"] = {"gutenberg": True}
    items = [r for r in iter_records(DEMO / "en" / "gutenberg_972.txt.bz2", spec) if isinstance(r, Record)]
    header, footer = items[0], items[-1]
    assert header.boilerplate == "gutenberg_header" and footer.boilerplate == "gutenberg_footer"
    assert header.text.startswith("The Project Gutenberg EBook of The Devil's Dictionary")
    assert header.text.rstrip().endswith("*** START OF THIS PROJECT GUTENBERG EBOOK THE DEVIL'S DICTIONARY ***")
    assert footer.text.startswith("End of Project Gutenberg's The Devil's Dictionary")
    assert "Project Gutenberg-tm" in footer.text
    body = items[1:-1]
    assert all(r.boilerplate is None for r in body)
    assert body[0].text.startswith("Produced by Aloysius")
    assert not any("Gutenberg" in r.text for r in body)
    # nothing lost: the same lines, regrouped
    words = lambda rs: " ".join(r.text for r in rs).split()  # noqa: E731
    assert words(items) == words(plain)


def test_normalise_counts_layout_and_rejects_boilerplate(raw_dir_of, spec_of, settings_of):
    spec = spec_of(lang="en", format="txt", split="block", block_bytes=2000)
    raw = raw_dir_of(DEMO / "en" / "gutenberg_972.txt.bz2")
    out = raw.parent / "n"
    stats = normalise_source("s", spec, raw, out / "d.parquet", out / "r.parquet", out / "q.parquet",
                             out / "s.json", settings_of(),
                             layout_settings={"unwrap": True, "gutenberg": True, "wiki": False})  # fmt: skip
    assert stats["rejected"] == {"layout.gutenberg_footer": 1, "layout.gutenberg_header": 1}
    assert stats["layout"]["lines_joined"] > 3000
    assert stats["records_in"] == stats["docs_out"] + 2
    docs = pq.read_table(out / "d.parquet").column("text").to_pylist()
    # wrapped at ~70 characters before; whole paragraphs now: what is left of the breaks inside
    # paragraphs is verse (indented) and short lines, hardly any wrapped prose
    breaks = [a for d in docs for p in re.split(r"\n[ \t]*\n", d)
              for a, b in zip(p.split("\n"), p.split("\n")[1:], strict=False)]  # fmt: skip
    prose = [a for a in breaks if not a.startswith(" ") and len(a) >= 60 and not a.endswith((".", ":", ";"))]
    assert len(prose) < 0.02 * stats["layout"]["lines_joined"]
    assert sum(len(line) > 200 for d in docs for line in d.split("\n")) > 300


def test_apply_runs_only_what_the_kind_asks_for():
    text = BOOK[200_000:203_000] + "\nCategory: Dictionaries"
    assert apply(text, {"unwrap": False, "wiki": False}).text == text
    out = apply(text, {"unwrap": True, "wiki": True})
    assert "Category" not in out.text and out.lines_joined > 0 and len(out.removed) == 1

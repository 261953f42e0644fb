"""Text layout before filtering: make curated text look like what it is, and count what goes.

Filters read lines: C4 keeps only lines ending in a full stop, FineWeb counts lines without
punctuation, Gopher counts words. A hard-wrapped book has a line break every 70 characters
inside its sentences, an encyclopedia article ends in a list of categories. These steps run
in the normalise stage, per source, as its kind says (``filter.kinds.<kind>.layout``,
overridden by ``sources.<name>.layout``):

``unwrap``
    Joins the lines of a hard-wrapped paragraph into one line; paragraphs (blank-line
    separated) stay apart. A paragraph counts as hard-wrapped when most of its lines that are
    followed by another of its lines come near the document's wrap width W (the 95th
    percentile of its line lengths: at least 3/4 of it) and most of them end inside a sentence
    (one paragraph a line ends each line with a full stop). In such a paragraph a line break
    is joined unless the line, with the next line's first word, would still end short of 3/4
    of W (a break made on purpose) or the indentation changes (verse, quotations); paragraphs
    that are not wrapped (verse, tables of contents, lists) keep all their breaks. (Measured
    on the demo's Gutenberg books: 8,569 line breaks joined; under 2 % of the prose lines left
    unjoined.) Chinese and Japanese lines join without a space; a line ending in a hyphen after a letter joins without one too (``soap-works``).
    Counted: ``lines_joined``.
``gutenberg``
    The Project Gutenberg licence header (up to and including the ``*** START OF ...`` line)
    and footer (from ``End of the Project Gutenberg EBook ...`` or ``*** END OF ...``) are not
    the book. The txt reader sets them aside as records of their own, which the normalise
    stage rejects with rule ``layout.gutenberg_header`` / ``layout.gutenberg_footer``.
``wiki``
    Category lines (``Category:``, ``分类：``, ``Kategorie:``, ... and the ``Categories:`` footer
    of rendered pages) are removed and counted with rule ``layout.wiki_category``; a wiki XML
    dump's ``[[Category:...]]`` and ``[[File:...]]`` links and ``<ref>`` notes are removed while
    the markup is stripped (``layout.wiki_category``, ``layout.wiki_file``, ``layout.wiki_ref``),
    and each section heading is its own line, so that line rules see sentences, not headings
    glued to paragraphs.

Each removal is kept (rule, text), so the stage counts it in lines and bytes and writes the
lines to its rejected file (``scope`` line): nothing is lost without a trace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# ---------------------------------------------------------------- unwrap
_CJK = re.compile(r"[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef\u3000-\u303f\U00020000-\U0002fa1f]")
_PARAGRAPH_SPLIT = re.compile(r"(\n[ \t]*\n)")
WRAPPED_SHARE = 0.5  # of inner lines near the wrap width, for a document to count as wrapped
NEAR_WIDTH = 0.75  # "near the wrap width": at least this share of W
_SENTENCE_END = tuple(".!?。！？；;:：\"'”’」』")


@dataclass
class Layout:
    """What the layout steps did to one document."""

    text: str
    lines_joined: int = 0
    removed: list[tuple[str, str]] = field(default_factory=list)  # (rule, removed text)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def wrap_width(lines: list[str]) -> int:
    """The 95th percentile of the non-blank line lengths: the width the text was wrapped at."""
    lengths = sorted(len(x.rstrip()) for x in lines if x.strip())
    if not lengths:
        return 0
    return lengths[min(len(lengths) - 1, int(0.95 * len(lengths)))]


def _wrapped(lines: list[str], width: int) -> bool:
    """Do these lines of one paragraph look wrapped at ``width``?"""
    inner = [a for a, b in zip(lines, lines[1:], strict=False) if a.strip() and b.strip()]
    if not inner or width < 20:
        return False
    near = sum(len(a.rstrip()) >= NEAR_WIDTH * width for a in inner)
    # a wrap breaks sentences: most wrapped lines do not end one (one paragraph a line does)
    open_end = sum(not a.rstrip().endswith(_SENTENCE_END) for a in inner)
    return near >= WRAPPED_SHARE * len(inner) and open_end >= WRAPPED_SHARE * len(inner)


def is_hard_wrapped(text: str) -> bool:
    """Does any paragraph of ``text`` look hard-wrapped?"""
    width = wrap_width(text.split("\n"))
    return any(_wrapped(p.split("\n"), width) for p in _PARAGRAPH_SPLIT.split(text)[::2])


def _soft_break(line: str, nxt: str, width: int) -> bool:
    """In a wrapped paragraph: True unless ``line`` was broken short on purpose, i.e. with the
    next line's first word it would still end well inside the wrap width. (Not the strict
    greedy test, "the word would not have fitted": texts are wrapped by hand and by tools with
    widths a few characters apart.)"""
    if _indent(line) != _indent(nxt):
        return False
    head = nxt.strip()
    first = head[:1] if _CJK.match(head) else head.split(maxsplit=1)[0]
    return len(line.rstrip()) + 1 + len(first) >= NEAR_WIDTH * width


def _join(a: str, b: str) -> str:
    a, b = a.rstrip(), b.strip()
    if _CJK.match(a[-1:]) and _CJK.match(b[:1]):
        return a + b
    if len(a) > 1 and a.endswith("-") and a[-2].isalpha() and b[:1].isalpha():
        return a + b
    return a + " " + b


def unwrap(text: str) -> Layout:
    """Join the soft line breaks of a hard-wrapped text; anything else is returned unchanged."""
    if "\n" not in text:
        return Layout(text)
    width = wrap_width(text.split("\n"))
    parts = _PARAGRAPH_SPLIT.split(text)
    joined = 0
    for k in range(0, len(parts), 2):  # even parts are paragraphs, odd ones their separators
        lines = parts[k].split("\n")
        if not _wrapped(lines, width):
            continue
        out = [lines[0]]
        for nxt in lines[1:]:
            if out[-1].strip() and nxt.strip() and _soft_break(out[-1], nxt, width):
                out[-1] = _join(out[-1], nxt)
                joined += 1
            else:
                out.append(nxt)
        parts[k] = "\n".join(out)
    return Layout("".join(parts), lines_joined=joined)


# ---------------------------------------------------------------- wiki
# Category namespaces of the larger Wikipedias (and the rendered-page footer "Categories:").
CATEGORY_NAMES = (
    "Category", "Categories", "分类", "分類", "页面分类", "頁面分類", "Kategorie", "Kategorien",
    "Catégorie", "Catégories", "Categoría", "Categoria", "Categorie", "Kategori", "Kategoria",
    "Категория", "Категории", "カテゴリ", "분류", "Thể loại",
)  # fmt: skip
_CATEGORY_LINE = re.compile(
    r"^\s*(?:" + "|".join(map(re.escape, CATEGORY_NAMES)) + r")\s*[:：]", re.IGNORECASE
)
# a category tail glued to the end of a one-line article: "... 。分类：中国城市 | 北京"
_CATEGORY_TAIL = re.compile(
    r"(?<=[。.!！?？」』)\]])\s*(?:" + "|".join(map(re.escape, CATEGORY_NAMES)) + r")\s*[:：].*$",
    re.IGNORECASE,
)


def strip_wiki(text: str) -> Layout:
    """Remove category lines (and a category tail at the end of a line)."""
    if not any(name.lower() in text.lower() for name in ("categor", "分类", "分類", "kategor",
                                                        "катег", "カテゴリ", "분류", "thể loại")):
        return Layout(text)
    out, removed = [], []
    for line in text.split("\n"):
        if _CATEGORY_LINE.match(line):
            removed.append(("layout.wiki_category", line))
            continue
        m = _CATEGORY_TAIL.search(line)
        if m:
            removed.append(("layout.wiki_category", m.group()))
            line = line[: m.start()]
        out.append(line)
    return Layout("\n".join(out).strip("\n"), removed=removed)


def wikitext_to_text(wikitext: str, mwparserfromhell) -> Layout:
    """A wiki page's markup to text: references, category and file links removed and counted,
    each section heading on its own line."""
    code = mwparserfromhell.parse(wikitext)
    removed: list[tuple[str, str]] = []
    for node in code.filter_tags(recursive=True):
        if str(node.tag).strip().lower() == "ref":
            _remove(code, node, "layout.wiki_ref", removed)
    for node in code.filter_wikilinks(recursive=True):
        ns = str(node.title).split(":", 1)[0].strip().lstrip(":")
        if ":" not in str(node.title):
            continue
        if ns.lower() in _CATEGORY_NS:
            _remove(code, node, "layout.wiki_category", removed)
        elif ns.lower() in _FILE_NS:
            _remove(code, node, "layout.wiki_file", removed)
    for heading in code.filter_headings(recursive=True):
        title = heading.title.strip_code().strip()
        try:
            code.replace(heading, f"\n{title}\n")
        except ValueError:
            continue
    text = code.strip_code()
    text = re.sub(r"[ \t]+\n", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    return Layout(text, removed=removed)


_CATEGORY_NS = {n.lower() for n in CATEGORY_NAMES}
_FILE_NS = {"file", "image", "文件", "檔案", "图像", "圖像", "datei", "fichier", "archivo", "ファイル"}


def _remove(code, node, rule: str, removed: list) -> None:
    try:
        code.remove(node)
    except ValueError:  # already gone with a removed parent
        return
    removed.append((rule, str(node)))


def apply(text: str, settings: dict) -> Layout:
    """The layout steps that ``settings`` (a source's resolved layout) turns on, in order."""
    out = Layout(text)
    if settings.get("wiki"):
        w = strip_wiki(out.text)
        out.text, out.removed = w.text, out.removed + w.removed
    if settings.get("unwrap"):
        u = unwrap(out.text)
        out.text, out.lines_joined = u.text, out.lines_joined + u.lines_joined
    return out


# ---------------------------------------------------------------- Project Gutenberg
GUTENBERG_START = re.compile(
    rb"^\s*\*{3,}\s*START OF (?:THE|THIS) PROJECT GUTENBERG", re.IGNORECASE
)
GUTENBERG_END = re.compile(
    rb"^\s*(?:\*{3,}\s*END OF (?:THE|THIS) PROJECT GUTENBERG"
    rb"|End of (?:the )?Project Gutenberg(?:'s)?\b|\*END\*THE SMALL PRINT)",
    re.IGNORECASE,
)
MAX_HEADER_LINES = 1000  # a START marker later than this is not a header's end


def gutenberg_sections(lines):
    """Tag each raw line (``.data`` bytes) of a plain-text file ``header``, ``body`` or ``footer``.

    Lines are held until the START marker is seen (at most MAX_HEADER_LINES; without a marker
    by then the file has no Gutenberg header and everything is body).
    """
    held = []
    it = iter(lines)
    for raw in it:
        held.append(raw)
        if GUTENBERG_START.match(raw.data):
            yield from (("header", r) for r in held)
            break
        if len(held) >= MAX_HEADER_LINES:
            yield from (("body", r) for r in held)
            break
    else:
        yield from (("body", r) for r in held)
        return
    section = "body"
    for raw in it:
        if section == "body" and GUTENBERG_END.match(raw.data):
            section = "footer"
        yield section, raw

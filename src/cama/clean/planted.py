"""Planted documents made from real text: edited copies (dedup recall) and junk (filter recall).

Near-duplicates, ``edit``:

The protocol of the anchor baselines (ANCHORS.md, "recall on planted copies"): each token
(a word for en and code, a character for zh, whitespace dropped) is, with probability ``p``,
substituted by a random corpus token, deleted, or followed by an inserted one, a third each.
A 2 % edit leaves a 5-shingle Jaccard near 0.83, 5 % near 0.65, 10 % near 0.44.

Junk, ``junk(kind, ...)``: what a filter chain is there to catch, each kind built from real
paragraphs, lines and titles of the language (``Real``), so only the junk is planted:

=============  ==========================================================================
boilerplate    a page of navigation, footer and share lines around real titles as menu items
spam           a real paragraph stuffed with a keyword phrase (1 or 2 of its own content words)
               after every 4 to 8 words
repeated       one real line repeated 8 to 30 times
random         strings of random letters and digits (en), of random CJK characters (zh),
               in lines and words of the language's usual lengths
toxic          a real paragraph with listed words of the counted categories (sexual, insult)
               put in, one every 6 to 12 words
wrong_lang     a real paragraph of the other language
=============  ==========================================================================
"""

from __future__ import annotations

import random
from dataclasses import dataclass


def edit(text: str, lang: str, p: float, rng: random.Random, vocab: list[str]) -> str:
    """An edited copy of ``text``; ``vocab`` supplies substituted and inserted tokens."""
    toks = list("".join(text.split())) if lang == "zh" else text.split()
    out: list[str] = []
    for tok in toks:
        if rng.random() < p:
            op = rng.randrange(3)
            if op == 0:
                out.append(rng.choice(vocab))
            elif op == 2:
                out += [tok, rng.choice(vocab)]
        else:
            out.append(tok)
    return ("" if lang == "zh" else " ").join(out)


# ------------------------------------------------------------------------ junk
JUNK_KINDS = ("boilerplate", "spam", "repeated", "random", "toxic", "wrong_lang")

_BOILERPLATE = {
    "en": ["Home", "About us", "Contact", "Privacy Policy", "Terms of Use", "Sign in", "Register",
           "Share this:", "Facebook", "Twitter", "Email", "Print", "Related posts", "Leave a reply",
           "© 2019 All rights reserved.", "Powered by WordPress", "Back to top", "Search",
           "Menu", "Subscribe to our newsletter", "Read more", "Next page", "Categories", "Archives"],
    "zh": ["首页", "关于我们", "联系我们", "隐私政策", "使用条款", "登录", "注册", "分享到：",
           "微博", "微信", "打印", "相关文章", "发表评论", "© 2019 版权所有", "返回顶部", "搜索",
           "菜单", "订阅", "阅读全文", "下一页", "网站地图", "友情链接", "客服热线", "备案号"],
}  # fmt: skip


@dataclass
class Real:
    """Real text of one language to build junk from."""

    lang: str  # en or zh
    paragraphs: list[str]  # prose paragraphs of 40+ words (en) or 100+ characters (zh)
    titles: list[str]  # short titles or headings
    toxic_terms: list[str]  # listed terms of the counted categories
    other: list[str]  # paragraphs of the other language


def _words(text: str, lang: str) -> list[str]:
    return list(text) if lang == "zh" else text.split()


_EN_STOP = frozenset(
    "a an and are as at be but by for from had has have he her his i in is it its not of on or "
    "she that the their them then there they this to was were which with would you".split()
)


def _is_content(word: str, lang: str) -> bool:
    if lang == "zh":
        return len(word) >= 2 and word.isalnum() and not word.isascii()
    return len(word) >= 4 and word.isalpha() and word.lower() not in _EN_STOP


def _segment(text: str, lang: str) -> list[str]:
    """Words: whitespace-split (en), jieba's cut (zh)."""
    if lang == "zh":
        from cama.clean.filters.base import zh_tokens

        return [t for t in zh_tokens(text) if t.strip()]
    return text.split()


def _glue(words: list[str], lang: str) -> str:
    return ("" if lang == "zh" else " ").join(words)


def junk(kind: str, real: Real, rng: random.Random) -> str:
    """One planted junk document of ``kind`` (one of JUNK_KINDS)."""
    lang = real.lang
    if kind == "boilerplate":
        items = rng.sample(_BOILERPLATE[lang], 10) + rng.sample(real.titles, rng.randint(10, 25))
        rng.shuffle(items)
        bars = [" | ".join(items[i : i + 4]) for i in range(0, len(items), 4)]
        return "\n".join(bars + rng.sample(_BOILERPLATE[lang], 6))
    if kind == "spam":
        # a keyword phrase of 1 or 2 of the paragraph's own content words, after every 4 to 8
        # words (search-engine stuffing: "cheap flights london", "北京 二手房")
        words = _segment(rng.choice(real.paragraphs), lang)
        content = sorted({w for w in words if _is_content(w, lang)})
        key = rng.sample(content, min(len(content), rng.randint(1, 2)))
        out: list[str] = []
        step = rng.randint(4, 8)
        for i, w in enumerate(words):
            out.append(w)
            if i % step == step - 1:
                out += key
        return _glue(out, lang)
    if kind == "repeated":
        line = rng.choice(real.paragraphs)
        line = line.split("。")[0] + "。" if lang == "zh" else " ".join(line.split()[:20])
        return "\n".join([line] * rng.randint(8, 30))
    if kind == "random":
        if lang == "zh":
            lines = []
            for _ in range(rng.randint(6, 20)):
                n = rng.choice((5, 7, 10, 15))
                lines.append("".join(chr(rng.randint(0x4E00, 0x9FA5)) for _ in range(n)) + "。")
            return "\n".join(lines)
        alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
        words = ["".join(rng.choice(alphabet) for _ in range(rng.randint(2, 9)))
                 for _ in range(rng.randint(60, 200))]  # fmt: skip
        return "\n".join(" ".join(words[i : i + 12]) for i in range(0, len(words), 12))
    if kind == "toxic":
        words = _words(rng.choice(real.paragraphs), lang)
        out = []
        gap = rng.randint(6, 12) if lang == "en" else rng.randint(10, 20)
        for i, w in enumerate(words):
            out.append(w)
            if i % gap == gap - 1:
                t = rng.choice(real.toxic_terms)
                out.append(f" {t} " if lang == "zh" and t.isascii() else t)
        return _glue(out, lang)
    if kind == "wrong_lang":
        return rng.choice(real.other)
    raise ValueError(f"junk kind {kind!r}: not one of {JUNK_KINDS}")

"""Boilerplate pages in curated sources: navigation bars, footers, share and sign-in lines.

The web chains find boilerplate with C4's and FineWeb's line rules (lines without a final
full stop, short lines), which also drop every verse of a poem and every wrapped line of a
book. The curated kinds turn those off and run this instead: a line is boilerplate when it is
a menu (three or more items between separators: ``|``, ``｜``, ``·``, ``»``, ``•``, `` / ``,
tabs) or a short line (at most ``max_phrase_line_chars`` characters) holding a stock phrase of
navigation, legal notices or sharing ("All rights reserved", "Privacy Policy", "Share this",
"版权所有", "返回顶部", ...). A document whose non-blank lines are more than
``max_lines_ratio`` boilerplate is rejected (rule ``boilerplate.max_lines_ratio``).

Ours; measured on the curated demo and shared sources and on planted boilerplate pages by
benchmarks/filter_precision.py (README, "Filter precision").
"""

from __future__ import annotations

import re

from cama.clean.filters.base import Doc, Filter, Reject, Scores, ratio

PHRASES = (
    # en: navigation, legal, sharing, account
    "all rights reserved", "privacy policy", "terms of use", "terms of service", "cookie policy",
    "cookies", "sign in", "sign up", "log in", "login", "register", "subscribe", "newsletter",
    "share this", "share on", "follow us", "powered by", "back to top", "read more",
    "contact us", "about us", "home page", "next page", "previous page", "leave a reply",
    "related posts", "skip to content", "copyright ©", "©",
    # zh
    "版权所有", "隐私政策", "使用条款", "服务条款", "登录", "注册", "订阅", "分享到", "关注我们",
    "返回顶部", "阅读全文", "联系我们", "关于我们", "网站地图", "友情链接", "下一页", "上一页",
    "首页", "备案号", "客服热线", "发表评论", "相关文章",
)  # fmt: skip
_PHRASE_RE = re.compile("|".join(re.escape(p) for p in PHRASES), re.IGNORECASE)
_MENU_SEP = re.compile(r"\s[|｜·»•/]\s|[｜]|\t")


def is_menu(line: str) -> bool:
    return len(_MENU_SEP.findall(line)) >= 2


class Boilerplate(Filter):
    name = "boilerplate"
    SCORES = ("lines", "lines_ratio")

    def score(self, doc: Doc) -> Scores:
        lines = doc.nonblank_lines
        n = 0
        for line in lines:
            s = line.strip()
            if is_menu(s) or (len(s) <= self.max_phrase_line_chars and _PHRASE_RE.search(s)):
                n += 1
        return {"lines": len(lines), "lines_ratio": ratio(n, len(lines))}

    def select(self, s: Scores) -> Reject | None:
        r = s["lines_ratio"]
        if r is not None and r > self.max_lines_ratio:
            return self.reject(
                "max_lines_ratio", r,
                f"menu, footer or sharing lines {r:.2f} > {self.max_lines_ratio}",
            )  # fmt: skip
        return None


FILTERS = {"boilerplate": Boilerplate}

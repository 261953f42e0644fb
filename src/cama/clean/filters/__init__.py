"""Document filters: one small class per heuristic, chained per language.

``build_chain(lang, settings)`` turns a validated ``filter.<lang>`` config block (as a source
sees it: its language chain with its kind's preset, ``cama.config.source_filter_settings``)
into a :class:`~cama.clean.filters.base.FilterChain`, in the order the block lists its
filters, skipping those with ``enabled: false``. Modules: ``english`` (Gopher, C4),
``chinese`` (FineWeb-2, ChineseWebText), ``code``, ``boilerplate`` (the curated kinds' line
rule), ``toxicity`` (word lists by category), ``pii`` (masking, not a filter).
"""

from __future__ import annotations

from cama.clean.filters import boilerplate, chinese, code, english, toxicity
from cama.clean.filters.base import Doc, Filter, FilterChain, Reject
from cama.clean.filters.pii import PiiMasker, mask

FILTERS_BY_LANG: dict[str, dict[str, type[Filter]]] = {
    "en": {**english.FILTERS, **boilerplate.FILTERS, **toxicity.FILTERS},
    "zh": {**chinese.FILTERS, **boilerplate.FILTERS, **toxicity.FILTERS},
    "code": {**code.FILTERS},
}


def build_chain(lang: str, settings: dict) -> FilterChain:
    """The chain for ``lang`` from ``settings`` = validated ``config['filter'][lang]``."""
    known = FILTERS_BY_LANG[lang]
    filters = []
    for name, block in settings.items():
        if name not in known:
            raise KeyError(f"filter.{lang}.{name}: no such filter (known: {', '.join(known)})")
        if block.get("enabled", True):
            filters.append(known[name](**block))
    return FilterChain(filters, lang)


__all__ = ["Doc", "Filter", "FilterChain", "PiiMasker", "Reject", "build_chain", "mask"]

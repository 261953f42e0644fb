"""generate: the one generation engine (evaluation, ``cama generate``, chat, web and serve).

- ``settings``  ``Settings`` (decoding of one prompt), the seed's ``PRESETS``, ``Generation``
- ``engine``    ``Engine``: continuous batching over a slot KV cache, CUDA graphs on GPU;
                the online interface (``start``/``submit``) for servers
- ``sampling``  per-row repetition penalty, temperature, top-k, top-p; seeded draws
- ``text``      incremental detokenising, stop strings, repetition trimming
- ``cases``     case files (JSONL/YAML) in, JSONL/Markdown out (``cama generate``, ``eval_cases``)
- ``cli``       ``cama generate``
"""

from cama.generate.settings import PRESETS, Generation, Settings, resolve

__all__ = ["PRESETS", "Engine", "Generation", "QueueFull", "Request", "Settings", "resolve"]


def __getattr__(name):  # the engine imports torch: only when it is asked for
    if name in ("Engine", "QueueFull", "Request"):
        from cama.generate import engine

        return getattr(engine, name)
    raise AttributeError(name)

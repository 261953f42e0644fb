"""The models a front end serves, by name: a model folder, and LoRA adapters on it.

``cama serve --model results/pretrain/model --adapter lora=results/lora/adapter`` serves two
names: ``model`` (the folder's name, or ``--name``) and ``lora``. A client picks one with the
``model`` field of its request. Each name gets its own engine (the adapter merged into its own copy
of the base weights), which batches the requests for that name.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cama.errors import ConfigError
from cama.generate import PRESETS, Settings  # torch-free; the Engine is imported where it loads

log = logging.getLogger(__name__)

__all__ = ["PRESETS", "Served", "Settings", "load_models", "parse_adapter"]


@dataclass
class Served:
    """One name a client can ask for."""

    name: str
    engine: Any  # cama.generate.Engine
    model_dir: Path
    adapter: Path | None = None

    @property
    def parent(self) -> str | None:
        """The base model's name for an adapter (``/v1/models`` shows it), else None."""
        return self.model_dir.name if self.adapter else None

    @property
    def context_length(self) -> int:
        """Tokens a request may span, prompt and completion together (the engine's limit)."""
        return int(self.engine.max_length)


def parse_adapter(spec: str) -> tuple[str, Path]:
    """``name=path`` or ``path`` (named after its folder) -> (name, path)."""
    name, sep, path = spec.partition("=")
    if not sep:
        name, path = Path(spec).name, spec
    if not name or not path:
        raise ConfigError(f"--adapter {spec!r}: expected NAME=PATH")
    return name, Path(path)


def load_models(model: str | Path, name: str | None = None, adapters: list[str] = (), **engine) -> dict[str, Served]:
    """Load ``model`` (served as ``name``, default its folder's name) and each adapter on it.

    ``engine``: keyword arguments for ``Engine.load`` (``max_batch``, ``max_queue``, ...).
    """
    from cama.generate import Engine

    model = Path(model)
    if not (model / "config.json").is_file():
        raise ConfigError(f"--model {model}: not a model folder (no config.json)")
    served: dict[str, Served] = {}
    for label, adapter in [(name or model.name, None), *map(parse_adapter, adapters)]:
        if label in served:
            raise ConfigError(f"model name {label!r} is served twice; name adapters with NAME=PATH")
        if adapter is not None and not (adapter / "adapter_config.json").is_file():
            raise ConfigError(f"--adapter {label}={adapter}: not a peft adapter folder (no adapter_config.json)")
        log.info("loading %s%s as %r", model, f" + {adapter}" if adapter else "", label)
        served[label] = Served(label, Engine.load(model, adapter=adapter, **engine), model, adapter)
    return served

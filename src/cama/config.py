"""Load and validate the workflow config against ``config/schema.yaml``.

All problems are collected and reported at once, each naming its key
(``sources.c4.lang: 'fr' is not one of ['zh', 'en', 'code']``), as litgpt does.
Defaults from the schema are filled in, so code downstream never needs
``.get(key, default)`` with a second copy of the default.

**One home for each default.** The schema holds every default. A stage's settings object is
a dataclass that mirrors one section, registered with its path (``@section``), whose fields
are written without defaults: the decorator gives them the schema's. The workflow builds it
from the validated section with ``build``, which wants every key (``from_section`` validates
a partial section first: tests, benchmarks). A class that takes only a few keys of a section
reads each default with ``default(path)``. ``tests/test_config_keys.py`` checks that every
registered class has exactly its section's keys, and that every other schema key is read by
some code.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import re
import types
import typing
from collections.abc import Callable, Mapping
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from cama.errors import ConfigError

if TYPE_CHECKING:
    import jsonschema

# The schema ships inside the package (config/schema.yaml links to it), so validation works
# from a wheel installed anywhere, not only from a checkout.
SCHEMA_PATH = files("cama") / "resources" / "schema.yaml"


def _with_defaults(validator_class):
    """A validator that also writes each property's ``default`` into the instance."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    import jsonschema

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


@functools.cache
def _validator_class():
    import jsonschema  # on first use: the settings classes need only the schema file (GPU images)

    return _with_defaults(jsonschema.Draft202012Validator)


def _Validator(schema: dict):  # noqa: N802  (it stands for the validator class)
    """A schema validator that fills in defaults."""
    return _validator_class()(schema)


@functools.cache
def _package_schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text(encoding="utf-8"))


def languages() -> tuple[str, ...]:
    """The corpus languages, written once: the schema's ``sources.<name>.lang`` enum."""
    return tuple(_package_schema()["properties"]["sources"]["patternProperties"]["^[A-Za-z0-9_-]+$"]["properties"]["lang"]["enum"])


def load_schema(path: str | Path | None = None) -> dict:
    """The schema (the package's, read once; or the file at ``path``), as a fresh dict."""
    if path:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    return copy.deepcopy(_package_schema())


def _key(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "<top level>"


def _describe(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        # name the unknown key itself, not only its parent
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        pattern = error.schema.get("patternProperties")
        if pattern:
            extra = [k for k in extra if not any(re.search(p, k) for p in pattern)]
        parent = _key(error)
        keys = [f"{parent}.{k}" if parent != "<top level>" else k for k in extra]
        return "; ".join(f"{k}: unknown key" for k in keys) or f"{parent}: {error.message}"
    return f"{_key(error)}: {error.message}"


def validate_config(config: dict, schema: dict | None = None) -> dict:
    """Validate ``config`` in place (filling defaults) and return it.

    Raises ``ConfigError`` listing every problem, each naming its key.
    """
    schema = schema or load_schema()
    validator = _Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    problems = [_describe(e) for e in errors]
    problems += _cross_checks(config) if not problems else []
    if problems:
        raise ConfigError(problems)
    return config


def schema_at(path: str, schema: dict | None = None) -> dict:
    """The subschema of a dotted config path (``evaluate.bpb``); read it, do not change it."""
    node = schema or _package_schema()
    for part in path.split("."):
        node = node["properties"][part]
    return node


def validate_section(name: str, settings: dict, schema: dict | None = None) -> dict:
    """Validate one section (``dedup``, or a dotted path such as ``evaluate.bpb``) on its own
    and return a filled copy.

    For library callers and tests that pass a partial section; messages name
    ``<section>.<key>`` as the full validation does.
    """
    section = copy.deepcopy(dict(settings or {}))
    parts = name.split(".")
    instance: dict = section
    for part in reversed(parts):
        instance = {part: instance}
    wrapper: dict = schema_at(name, schema)
    for part in reversed(parts):
        wrapper = {"type": "object", "properties": {part: wrapper}}
    problems = [_describe(e) for e in _Validator(wrapper).iter_errors(instance)]
    # the cross-checks of a top-level section (a source's filter chain needs the filter section too)
    problems += _cross_checks(instance) if not problems and len(parts) == 1 and name != "sources" else []
    if problems:
        raise ConfigError(problems)
    return section


# ----------------------------------------------------------------------------- settings objects

SECTIONS: dict[type, tuple[str, tuple[str, ...]]] = {}
"""Registered settings dataclasses: class -> (config path, fields not taken from the config)."""


def default(path: str):
    """The schema's default of one key (``default("pack.max_length")``), for a dataclass field of
    a settings object that takes only some keys of a section."""
    return copy.deepcopy(schema_at(path)["default"])


def section(path: str, *, fixed: tuple[str, ...] = ()) -> Callable[[type], type]:
    """Register a settings class as the mirror of config section ``path``, and give its fields
    the schema's defaults. Put it under ``@dataclass``::

        @dataclass(frozen=True)
        @section("pretrain")
        class TrainSettings:
            lr: float
            \"\"\"Peak learning rate.\"\"\"

    Its fields are that section's keys, one for one, written without defaults: each gets the
    schema's (a nested settings class, its own class's defaults). ``fixed`` names fields a
    stage sets itself rather than from this section (a second stage reusing the class).
    """

    def register(cls: type) -> type:
        props = schema_at(path).get("properties", {})
        hints = typing.get_type_hints(cls)
        for name in cls.__dict__.get("__annotations__", {}):
            if name in cls.__dict__ or "default" not in props.get(name, {}):
                continue
            sub, value = _dataclass_of(hints[name]), props[name]["default"]
            if sub is not None:
                setattr(cls, name, dataclasses.field(default_factory=sub))
            elif isinstance(value, dict | list):
                setattr(cls, name, dataclasses.field(default_factory=lambda v=value: copy.deepcopy(v)))
            else:
                setattr(cls, name, value)
        SECTIONS[cls] = (path, tuple(fixed))
        return cls

    return register


def _dataclass_of(annotation) -> type | None:
    """The settings dataclass in a field's annotation (``ZeroSettings`` or ``ZeroSettings | None``)."""
    if dataclasses.is_dataclass(annotation):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        found = [a for a in typing.get_args(annotation) if dataclasses.is_dataclass(a)]
        return found[0] if found else None
    return None


def build(cls: type, section: Mapping, key: str, **fixed):
    """The settings dataclass ``cls`` from a validated config ``section``.

    Every field must be in ``section`` (or ``fixed``); a key the class lacks is an error too.
    Fields whose type is a dataclass are built from their sub-section. ``ConfigError``
    names every problem, each by its key.
    """
    problems: list[str] = []
    out = _build(cls, section, key, problems, fixed)
    if problems:
        raise ConfigError(problems)
    return out


def _build(cls: type, section: Mapping, key: str, problems: list[str], fixed: Mapping | None = None):
    fixed = fixed or {}
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    section = dict(section or {})
    kwargs = {}
    for name in sorted(set(section) - set(names)):
        problems.append(f"{key}.{name}: unknown key")
    for name in names:
        if name in fixed:
            kwargs[name] = fixed[name]
        elif name not in section:
            problems.append(f"{key}.{name}: missing (the schema gives every key a default; is it validated?)")
        else:
            value = section[name]
            sub = _dataclass_of(hints[name])
            if sub is not None and isinstance(value, Mapping):
                value = _build(sub, value, f"{key}.{name}", problems)
            kwargs[name] = value
    if problems:
        return None
    return cls(**kwargs)


def from_section(cls: type, values: Mapping | None = None, key: str | None = None, **fixed):
    """``cls`` from a partial section: validated against the schema (defaults filled in), then built.

    ``key`` defaults to the path ``cls`` is registered for.
    """
    key = key or SECTIONS[cls][0]
    return build(cls, validate_section(key, dict(values or {})), key, **fixed)


def deep_merge(base: dict, override: dict) -> dict:
    """A copy of ``base`` with ``override`` merged in, mappings key by key."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def source_filter_settings(config: dict, source: str, schema: dict | None = None) -> dict:
    """The ``filter`` section as one source sees it: its language chain with the source's overrides.

    Raises ``ConfigError`` naming ``sources.<source>.filter.<key>`` for a bad override.
    """
    spec = config["sources"][source]
    lang = spec["lang"]
    settings = copy.deepcopy(config["filter"])
    if not spec.get("filter"):
        return settings
    merged = deep_merge(settings[lang], spec["filter"])
    lang_schema = (schema or load_schema())["properties"]["filter"]["properties"][lang]
    wrapper = {"type": "object", "properties": {"filter": lang_schema}}
    errors = list(_Validator(wrapper).iter_errors({"filter": merged}))
    if errors:
        raise ConfigError(
            [_describe(e).replace("filter", f"sources.{source}.filter", 1) for e in errors]
        )
    settings[lang] = merged
    return settings


def _cross_checks(config: dict) -> list[str]:
    """Rules that JSON Schema cannot say, each naming its key."""
    problems = []
    for source in config.get("sources", {}):
        try:
            source_filter_settings(config, source)
        except ConfigError as e:
            problems += e.problems
    model, pack = config.get("model", {}), config.get("pack", {})
    if not model.get("base") and model and pack:  # a base model's positions: cama.preflight
        positions = model["init"]["max_position_embeddings"]
        if positions < pack["max_length"]:
            problems.append(
                f"model.init.max_position_embeddings: {positions} is shorter than "
                f"pack.max_length = {pack['max_length']}"
            )
    if config.get("instruct", {}).get("sources") or config.get("evaluate", {}).get("ie", {}).get("sets"):
        from cama.instruct.convert import config_problems  # imported only when there are sources

        problems += config_problems(config)
    mh = config.get("dedup", {}).get("minhash", {})
    if mh and mh["bands"] * mh["rows"] > mh["num_perm"]:
        problems.append(
            f"dedup.minhash: bands × rows = {mh['bands'] * mh['rows']} exceeds num_perm = {mh['num_perm']}"
        )
    return problems


def load_config(path: str | Path | list, schema: dict | None = None) -> dict:
    """Read a YAML config file (or several, merged in order as ``snakemake --configfile a b``
    merges them) and validate it. Errors name the file too."""
    paths = [Path(p) for p in path] if isinstance(path, list | tuple) else [Path(path)]
    config: dict = {}
    for p in paths:
        try:
            config = deep_merge(config, yaml.safe_load(p.read_text()) or {})
        except FileNotFoundError:
            raise ConfigError(f"{p}: config file not found") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: not valid YAML: {e}") from None
    try:
        return validate_config(config, schema)
    except ConfigError as e:
        raise ConfigError([f"{' + '.join(map(str, paths))}: {q}" for q in e.problems]) from None


LANGS = languages()
"""zh, en, code: every per-language output (held-out sets, shards, bits per byte) follows it."""


def get(config: dict, dotted: str) -> Any:
    """``get(config, "dedup.minhash.bands")``: for messages and tests."""
    node = config
    for part in dotted.split("."):
        node = node[part]
    return node

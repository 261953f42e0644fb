"""Load and validate the workflow config against ``config/schema.yaml``.

All problems are collected and reported at once, each naming its key
(``sources.c4.lang: 'fr' is not one of ['zh', 'en', 'code']``), as litgpt does.
Defaults from the schema are filled in, so code downstream never needs
``.get(key, default)`` with a second copy of the default.
"""

from __future__ import annotations

import copy
import re
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from cama.errors import ConfigError

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

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_Validator = _with_defaults(jsonschema.Draft202012Validator)


def load_schema(path: str | Path | None = None) -> dict:
    return yaml.safe_load((Path(path) if path else SCHEMA_PATH).read_text(encoding="utf-8"))


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


def validate_section(name: str, settings: dict, schema: dict | None = None) -> dict:
    """Validate one top-level section (e.g. ``dedup``) on its own and return a filled copy.

    For library callers and tests that pass a partial section; messages name
    ``<section>.<key>`` as the full validation does.
    """
    section = copy.deepcopy(dict(settings))
    wrapper = {"type": "object", "properties": {name: (schema or load_schema())["properties"][name]}}
    problems = [_describe(e) for e in _Validator(wrapper).iter_errors({name: section})]
    problems += _cross_checks({name: section}) if not problems else []
    if problems:
        raise ConfigError(problems)
    return section


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
    if model.get("base") and not Path(model["base"]).expanduser().exists():
        problems.append(f"model.base: {model['base']} does not exist (a local HF LLaMA folder)")
    if not model.get("base") and model and pack:
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


def load_config(path: str | Path, schema: dict | None = None) -> dict:
    """Read a YAML config file and validate it. Errors name the file too."""
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    try:
        return validate_config(config, schema)
    except ConfigError as e:
        raise ConfigError([f"{path}: {p}" for p in e.problems]) from None


def get(config: dict, dotted: str) -> Any:
    """``get(config, "dedup.minhash.bands")``: for messages and tests."""
    node = config
    for part in dotted.split("."):
        node = node[part]
    return node

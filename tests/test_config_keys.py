"""One home for each default: the schema and the code agree on the keys, both ways.

- Every settings class registered with ``cama.config.section`` has exactly its section's keys
  (its defaults then come from the schema, so none is written twice).
- Every other schema key is read by some code: its name is subscripted (``x["key"]``),
  fetched (``.get("key")``), passed by keyword, declared as a parameter or field, used as an
  attribute or as the key of a lookup table (the filters by name), somewhere in ``src/cama``,
  ``scripts``, ``rules`` or the ``Snakefile``. A key named after a language (``filter.zh``)
  is read by a source's language.
- Every literal ``config[...]`` path in the rules, the Snakefile, the scripts and the package
  is a schema key.

The checks run on whatever schema and code the branch holds (sections added later are
checked the same way), and the planted mismatches at the end show that each one fails.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import pkgutil
import re
from pathlib import Path

import cama
from cama.config import SECTIONS, load_schema

ROOT = Path(__file__).resolve().parents[1]
WILDCARD = "*"  # a source name (patternProperties)


def schema_paths(schema: dict, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], dict]:
    """Every key path of the schema (sources' names as ``*``) -> its subschema."""
    out = {}
    for name, sub in (schema.get("properties") or {}).items():
        path = (*prefix, name)
        out[path] = sub
        out.update(schema_paths(sub, path))
    for sub in (schema.get("patternProperties") or {}).values():
        out.update(schema_paths(sub, (*prefix, WILDCARD)))
    return out


def code_files() -> dict[Path, str]:
    files = [*(ROOT / "src" / "cama").rglob("*.py"), *(ROOT / "scripts").glob("*.py"),
             *(ROOT / "rules").glob("*.smk"), ROOT / "Snakefile"]  # fmt: skip
    return {f: f.read_text(encoding="utf-8") for f in files}


_GETTERS = {"get", "pop", "setdefault"}


def read_names(files: dict[Path, str]) -> set[str]:
    """Names the code reads a setting by (see the module's docstring)."""
    names: set[str] = set()
    for path, text in files.items():
        if path.suffix != ".py":  # Snakefile and .smk: not Python, read their subscripts
            names |= set(re.findall(r"""\[\s*["'](\w+)["']\s*\]""", text))
            names |= set(re.findall(r"""\.get\(\s*["'](\w+)["']""", text))
            continue
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
                names.add(str(node.slice.value))
            elif isinstance(node, ast.Call):
                names |= {k.arg for k in node.keywords if k.arg}
                f = node.func
                if isinstance(f, ast.Attribute) and f.attr in _GETTERS and node.args:
                    if isinstance(node.args[0], ast.Constant):
                        names.add(str(node.args[0].value))
            elif isinstance(node, ast.Attribute):
                names.add(node.attr)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
            elif isinstance(node, ast.Dict):
                names |= {str(k.value) for k in node.keys if isinstance(k, ast.Constant)}
    return names


def config_reads(files: dict[Path, str]) -> set[tuple[str, ...]]:
    """Literal ``config["a"]["b"]`` (and ``config.get("a")``) paths in the code."""
    step = r"""(?:\[\s*["'](\w+)["']\s*\]|\.get\(\s*["'](\w+)["'][^)]*\))"""
    out = set()
    for text in files.values():
        for m in re.finditer(rf"\bconfig((?:{step})+)", text):
            out.add(tuple(a or b for a, b in re.findall(step, m.group(1))))
    return out


def registered() -> dict[type, tuple[str, tuple[str, ...]]]:
    """Import every module of the package, so that every settings class registers itself."""
    for mod in pkgutil.walk_packages(cama.__path__, "cama."):
        if mod.name in ("cama.__main__",):
            continue
        try:
            importlib.import_module(mod.name)
        except ImportError:  # an optional extra that is not installed: its keys are checked by name
            continue
    return dict(SECTIONS)


def class_mismatches(classes: dict, schema: dict) -> list[str]:
    paths = schema_paths(schema)
    problems = []
    for cls, (path, fixed) in classes.items():
        sub = paths.get(tuple(path.split(".")))
        if sub is None:
            problems.append(f"{cls.__name__}: registered for {path}, which the schema lacks")
            continue
        fields = {f.name for f in dataclasses.fields(cls)} - set(fixed)
        keys = set(sub.get("properties", {}))
        problems += [f"{cls.__name__}.{n}: no schema key {path}.{n}" for n in sorted(fields - keys)]
        problems += [f"{path}.{n}: a schema key {cls.__name__} lacks" for n in sorted(keys - fields)]
    return problems


def unread_keys(schema: dict, classes: dict, names: set[str]) -> list[str]:
    covered = {tuple(path.split(".")) for path, _ in classes.values()}
    languages = set(schema_paths(schema)[("sources", WILDCARD, "lang")]["enum"])
    names = names | languages  # filter.<lang>, normalise.unicode_form.<lang>: looked up by a source's language
    problems = []
    for path in schema_paths(schema):
        if path[-1] == WILDCARD or path[:-1] in covered:
            continue  # a source's name; or a key of a registered class (checked one for one)
        if path[-1] not in names:
            problems.append(f"{'.'.join(path)}: no code reads it")
    return problems


def unknown_reads(schema: dict, reads: set[tuple[str, ...]]) -> list[str]:
    paths = set(schema_paths(schema))
    return [f"config[{']['.join(map(repr, r))}]: not a schema key" for r in sorted(reads) if r not in paths]


# ----------------------------------------------------------------------------- the checks


def test_registered_settings_classes_have_exactly_their_sections_keys():
    classes = registered()
    assert {"pretrain", "pretrain.zero", "model.init", "evaluate.bpb"} <= {p for p, _ in classes.values()}
    assert class_mismatches(classes, load_schema()) == []


def test_every_schema_key_is_read_by_some_code():
    assert unread_keys(load_schema(), registered(), read_names(code_files())) == []


def test_no_code_reads_a_config_key_the_schema_lacks():
    reads = config_reads(code_files())
    assert ("pack", "tokenizer") in reads and ("model", "base") in reads  # the scan sees the rules
    assert unknown_reads(load_schema(), reads) == []


def test_registered_classes_take_their_defaults_from_the_schema():
    schema = schema_paths(load_schema())
    for cls, (path, fixed) in registered().items():
        for f in dataclasses.fields(cls):
            sub = schema.get((*path.split("."), f.name), {})
            if f.name in fixed or "default" not in sub or dataclasses.is_dataclass(f.default_factory):
                continue
            value = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            assert value == sub["default"], f"{cls.__name__}.{f.name}"


# ----------------------------------------------------------------------------- the checks fail


def test_a_key_added_to_the_schema_alone_is_caught():
    schema = load_schema()
    schema["properties"]["pretrain"]["properties"]["warmup_ratio"] = {"type": "number", "default": 0.0}
    schema["properties"]["report"]["properties"]["gallery_columns"] = {"type": "integer", "default": 3}
    classes = registered()
    assert "pretrain.warmup_ratio: a schema key TrainSettings lacks" in class_mismatches(classes, schema)
    assert "report.gallery_columns: no code reads it" in unread_keys(schema, classes, read_names(code_files()))


def test_a_key_read_by_code_alone_is_caught():
    schema = load_schema()
    del schema["properties"]["evaluate"]["properties"]["bpb"]["properties"]["stride"]
    assert "BpbSettings.stride: no schema key evaluate.bpb.stride" in class_mismatches(registered(), schema)
    files = {Path("rules/x.smk"): 'params:\n    s=config["pack"]["heldout"]["fractoin"],\n'}
    assert unknown_reads(load_schema(), config_reads(files)) == ["config['pack']['heldout']['fractoin']: not a schema key"]

"""``cama validate``: the schema check, then the preflight checks for a real run.

Every problem is printed at once, each naming its key or file; the exit status is 1 on any.
The workflow runs the same checks before its first job (``rules/common.smk``), with the
number of training processes the ``pretrain`` rule will get.

The checks (``CHECKS``; a stage adds its own function here):

- **sources**: every local path or glob names at least one file; http(s) URLs and
  ``hf://datasets/`` ids are left to the download stage;
- **base model** (``model.base``): a folder that ``transformers.AutoConfig`` reads, with weights
  and a sentencepiece tokenizer (``tokenizer.model``, which the pack stage encodes with);
- **tokenizer**: with ``model.base`` set the tokenizer *is* the base model's: the workflow
  never trains one for an existing model. A ``pack.tokenizer.path`` must exist, and with a
  base model it must have the base model's vocabulary. The vocabulary must fit the model's
  embedding rows, and the BOS, EOS and pad ids agree with the model's config;
- **lengths**: ``pack.max_length`` (and ``pretrain.seq_length``) within the model's
  ``max_position_embeddings``;
- **batch**: ``pretrain.global_batch_size`` a multiple of micro-batch × processes;
- **word lists**: a toxicity ``wordlist`` is a shipped list or an existing file.

``check_blend`` runs at the start of pretraining: the blend's recorded vocabulary and BOS/EOS
ids against the model and its tokenizer.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from cama.config import load_config
from cama.errors import ConfigError

DEFAULT_CONFIG = Path("config") / "config.yaml"
WEIGHT_GLOBS = ("*.safetensors", "pytorch_model*.bin", "*.safetensors.index.json")


@dataclass(frozen=True)
class Context:
    """Where the config's paths are read from, and how many processes will train."""

    directory: Path
    """The working directory of the run (``snakemake --directory``): results, model.base and
    pack.tokenizer.path are relative to it."""
    workflow: Path
    """The workflow folder (holding the Snakefile): source uris are relative to it."""
    processes: int | None = None
    """Training processes of the pretrain rule (all nodes); None: not known."""

    def path(self, value: str) -> Path:
        p = Path(os.path.expanduser(os.path.expandvars(value)))
        return p if p.is_absolute() else self.directory / p


# ----------------------------------------------------------------------------- tokenizers


@dataclass(frozen=True)
class Vocab:
    """A tokenizer's vocabulary and special ids, as the checks compare them."""

    where: str
    size: int
    bos: int | None
    eos: int | None
    pad: int | None
    pieces: tuple[str, ...]


def read_vocab(path: str | os.PathLike) -> Vocab:
    """The sentencepiece model at ``path`` (a .model file or a folder holding tokenizer.model)."""
    import sentencepiece as spm

    p = Path(path)
    model = p / "tokenizer.model" if p.is_dir() else p
    sp = spm.SentencePieceProcessor(model_file=str(model))
    n = sp.get_piece_size()

    def special(i: int) -> int | None:
        return i if i >= 0 else None

    return Vocab(str(model), n, special(sp.bos_id()), special(sp.eos_id()), special(sp.pad_id()),
                 tuple(sp.id_to_piece(list(range(n)))))  # fmt: skip


def model_config(folder: str | os.PathLike) -> dict:
    """The model's config.json as transformers reads it (``AutoConfig``)."""
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(str(folder)).to_dict()


def _first(x):
    return x[0] if isinstance(x, list) and x else x


def compare_vocab(vocab: Vocab, hf_config: dict, key: str, model_key: str = "model.base") -> list[str]:
    """The tokenizer against the model's config: vocabulary within the embedding rows, same ids."""
    problems = []
    rows = hf_config.get("vocab_size")
    if rows is not None and vocab.size > rows:
        problems.append(
            f"{key}: the tokenizer {vocab.where} has {vocab.size} tokens, more than the "
            f"{rows} embedding rows of {model_key} (config.json vocab_size)"
        )
    for name, ours in (("bos", vocab.bos), ("eos", vocab.eos)):
        theirs = _first(hf_config.get(f"{name}_token_id"))
        if theirs is not None and ours is not None and theirs != ours:
            problems.append(
                f"{key}: the tokenizer's {name.upper()} id is {ours}, {model_key}'s config.json "
                f"says {name}_token_id {theirs}"
            )
    pad = _first(hf_config.get("pad_token_id"))
    if pad is not None and vocab.pad is not None and pad != vocab.pad:
        problems.append(f"{key}: the tokenizer's pad id is {vocab.pad}, {model_key}'s config.json says pad_token_id {pad}")
    if pad is not None and rows is not None and pad >= rows:
        problems.append(f"{model_key}: pad_token_id {pad} is outside the {rows} embedding rows")
    return problems


def same_vocab(ours: Vocab, theirs: Vocab) -> str | None:
    """None if the two vocabularies are the same, else where they first differ."""
    if ours.size != theirs.size:
        return f"{ours.size} tokens against {theirs.size}"
    for i, (a, b) in enumerate(zip(ours.pieces, theirs.pieces, strict=True)):
        if a != b:
            return f"id {i} is {a!r} against {b!r}"
    return None


# ----------------------------------------------------------------------------- the checks


def any_local_file(path: Path, include: list[str]) -> bool:
    """Whether a local path, folder or glob names at least one file (``include`` applied to
    names as ``cama.corpus.sources.local_matches`` gives them).

    Stops at the first: a real code tree may hold millions of files, and this runs before
    every workflow run."""
    import glob

    from cama.corpus.sources import glob_base, matches_include

    def found(hit: Path, base: Path) -> bool:
        if hit.is_file():
            return matches_include(hit.relative_to(base).as_posix(), include)
        for root, _, files in os.walk(hit):
            if any(matches_include((Path(root) / f).relative_to(base).as_posix(), include) for f in files):
                return True
        return False

    text = str(path)
    if glob.has_magic(text):
        base = glob_base(text)
        return any(found(Path(hit), base) for hit in glob.iglob(text, recursive=True))
    if path.is_dir():
        return found(path, path)
    return path.exists() and found(path, path.parent)


def check_sources(config: dict, ctx: Context) -> list[str]:
    from cama.corpus.sources import UriKind, as_uri_list, classify_uri, expand_path, parse_hub_uri
    from cama.errors import SourceError

    problems = []
    for name, spec in config.get("sources", {}).items():
        for uri in as_uri_list(spec["uri"]):
            try:
                kind = classify_uri(uri)
                if kind == UriKind.HUB:
                    parse_hub_uri(uri)
                    continue
            except SourceError as e:
                problems.append(f"sources.{name}.uri: {e}")
                continue
            if kind == UriKind.HTTP:
                continue  # the download stage fetches it (and retries)
            path = expand_path(uri, ctx.workflow)
            if not any_local_file(path, spec.get("include") or []):
                hint = " (an environment variable in it is not set)" if "$" in str(path) else ""
                problems.append(f"sources.{name}.uri: no file at {path}{hint}")
    return problems


def check_model(config: dict, ctx: Context) -> list[str]:
    """model.base, the tokenizer, and the lengths they allow."""
    model, pack = config.get("model", {}), config.get("pack", {})
    base, tok_path = model.get("base"), pack.get("tokenizer", {}).get("path")
    problems: list[str] = []
    vocab = None
    if tok_path:
        p = ctx.path(tok_path)
        if not p.exists():
            problems.append(f"pack.tokenizer.path: {p} does not exist")
        elif p.is_dir() and not (p / "tokenizer.model").is_file():
            problems.append(f"pack.tokenizer.path: {p} has no tokenizer.model (a sentencepiece model)")
        else:
            try:
                vocab = read_vocab(p)
            except (OSError, RuntimeError) as e:
                problems.append(f"pack.tokenizer.path: {p} is not a sentencepiece model: {e}")
    positions = None
    if not base:  # the demo's model.init: cama.config checks its positions against pack.max_length
        init = model.get("init", {})
        positions = init.get("max_position_embeddings")
        key_positions = "model.init.max_position_embeddings"
        max_length = None
    else:
        folder = ctx.path(base)
        key_positions = f"model.base ({folder / 'config.json'}) max_position_embeddings"
        if not folder.exists():
            return problems + [f"model.base: {folder} does not exist (a local HF LLaMA folder: config.json, weights, tokenizer)"]
        if not folder.is_dir():
            return problems + [f"model.base: {folder} is not a folder (an HF LLaMA folder: config.json, weights, tokenizer)"]
        try:
            cfg = model_config(folder)
        except (OSError, ValueError, KeyError) as e:
            return problems + [f"model.base: transformers cannot read {folder}/config.json: {str(e).splitlines()[0]}"]
        positions = cfg.get("max_position_embeddings")
        if not any(next(folder.glob(g), None) for g in WEIGHT_GLOBS):
            problems.append(f"model.base: {folder} has no weights (*.safetensors or pytorch_model*.bin)")
        own = None
        if not (folder / "tokenizer.model").is_file():
            problems.append(
                f"model.base: {folder} has no tokenizer.model beside the weights (the pack stage "
                "encodes with the base model's sentencepiece tokenizer)"
            )
        else:
            try:
                own = read_vocab(folder)
            except (OSError, RuntimeError) as e:
                problems.append(f"model.base: {folder}/tokenizer.model is not a sentencepiece model: {e}")
        if own is not None:
            problems += compare_vocab(own, cfg, "model.base")
        if vocab is not None:
            differs = same_vocab(vocab, own) if own is not None else None
            if differs:
                problems.append(
                    f"pack.tokenizer.path: {vocab.where} is not model.base's tokenizer ({differs}); "
                    "leave pack.tokenizer.path null to use the base model's own"
                )
            else:
                problems += compare_vocab(vocab, cfg, "pack.tokenizer.path")
        max_length = pack.get("max_length")
    if positions and max_length and max_length > positions:
        problems.append(f"pack.max_length: {max_length} exceeds {key_positions} {positions}")
    seq = config.get("pretrain", {}).get("seq_length")
    if positions and seq and seq > positions:
        problems.append(f"pretrain.seq_length: {seq} exceeds {key_positions} {positions}")
    if seq and pack.get("max_length") and seq < pack["max_length"]:
        problems.append(f"pretrain.seq_length: {seq} is shorter than the samples (pack.max_length {pack['max_length']})")
    return problems


def check_batch(config: dict, ctx: Context) -> list[str]:
    from cama.train.settings import basic_problems, batch_sizes, from_dict

    if "pretrain" not in config:
        return []
    try:
        settings = from_dict(config["pretrain"])
    except ConfigError as e:
        return e.problems
    problems = basic_problems(settings)
    if ctx.processes:
        problems += batch_sizes(settings, ctx.processes)[2]
    elif settings.global_batch_size and settings.global_batch_size % settings.micro_batch_size:
        problems.append(
            f"pretrain.global_batch_size: {settings.global_batch_size} is not a multiple of "
            f"micro_batch_size {settings.micro_batch_size}"
        )
    return problems


def check_wordlists(config: dict, ctx: Context) -> list[str]:
    from importlib.resources import files

    shipped = files("cama") / "resources" / "wordlists"
    problems = []
    chains = [(f"filter.{lang}", chain) for lang, chain in config.get("filter", {}).items()]
    chains += [(f"sources.{s}.filter", spec.get("filter") or {}) for s, spec in config.get("sources", {}).items()]
    for key, chain in chains:
        block = chain.get("toxicity") if isinstance(chain, dict) else None
        name = block.get("wordlist") if isinstance(block, dict) else None
        if name and not (shipped / f"{name}.txt").is_file() and not Path(name).is_file():
            problems.append(f"{key}.toxicity.wordlist: {name!r} is neither a shipped list nor a file")
    return problems


CHECKS: list[Callable[[dict, Context], list[str]]] = [check_sources, check_model, check_batch, check_wordlists]


def preflight(config: dict, ctx: Context) -> list[str]:
    """Every problem of a validated config (defaults filled in) that needs the files to see."""
    problems: list[str] = []
    for check in CHECKS:
        problems += check(config, ctx)
    return problems


def check_blend(blend: str | os.PathLike, base_model: str | os.PathLike) -> list[str]:
    """At pretraining start: the blend was packed with this model's tokenizer (size, BOS, EOS)."""
    blend = Path(blend)
    if not blend.is_file():
        return [f"{blend}: not found (run the pack stage first)"]
    spec = json.loads(blend.read_text())
    problems = []
    try:
        cfg = model_config(base_model)
    except (OSError, ValueError) as e:
        return [f"model.base: transformers cannot read {base_model}/config.json: {str(e).splitlines()[0]}"]
    vocab = read_vocab(base_model) if (Path(base_model) / "tokenizer.model").is_file() else None
    recorded = {"vocab_size": spec.get("vocab_size"), "bos_id": spec.get("bos_id"), "eos_id": spec.get("eos_id")}
    if vocab is not None:
        for name, ours in (("vocab_size", vocab.size), ("bos_id", vocab.bos), ("eos_id", vocab.eos)):
            if recorded[name] is not None and recorded[name] != ours:
                problems.append(
                    f"{blend}: {name} {recorded[name]} (the tokenizer the shards were packed with) differs from "
                    f"{ours} of the base model's tokenizer {vocab.where}"
                )
    rows = cfg.get("vocab_size")
    if recorded["vocab_size"] is not None and rows is not None and recorded["vocab_size"] > rows:
        problems.append(
            f"{blend}: vocab_size {recorded['vocab_size']} exceeds the {rows} embedding rows of {base_model}"
        )
    for name in ("bos", "eos"):
        theirs = _first(cfg.get(f"{name}_token_id"))
        ours = recorded[f"{name}_id"]
        if ours is not None and theirs is not None and ours != theirs:
            problems.append(f"{blend}: {name}_id {ours} differs from {name}_token_id {theirs} in {base_model}/config.json")
    return problems


# ----------------------------------------------------------------------------- cama validate


def workflow_folder(configfile: Path) -> Path:
    """The nearest folder above the config file that holds a Snakefile (else the current one)."""
    for folder in configfile.resolve().parents:
        if (folder / "Snakefile").is_file():
            return folder
    return Path.cwd()


def profile_processes(profile: Path) -> int | None:
    """Training processes of the pretrain rule under a Snakemake profile's ``set-resources``."""
    path = profile / "config.yaml" if profile.is_dir() else profile
    res = (yaml.safe_load(path.read_text()) or {}).get("set-resources", {}).get("pretrain", {})
    gpu, nodes, procs = int(res.get("gpu", 0)), int(res.get("nodes", 1)), int(res.get("procs", 1))
    return gpu if gpu > 0 else nodes * procs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--configfile", type=Path, nargs="+", default=[DEFAULT_CONFIG],
        help="the run's config; several are merged in order, as Snakemake does (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--directory", type=Path, default=Path("."),
        help="the run's working directory (snakemake --directory): model.base and pack.tokenizer.path "
        "are relative to it (default: the current one)",
    )  # fmt: skip
    parser.add_argument(
        "--workflow", type=Path, default=None,
        help="the workflow folder, which source paths are relative to (default: the folder above "
        "the config file that holds the Snakefile)",
    )  # fmt: skip
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--processes", type=int, default=None, help="training processes of the pretrain rule")
    group.add_argument("--profile", type=Path, default=None,
                       help="a Snakemake profile: the pretrain rule's processes from its set-resources")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.configfile)
    except ConfigError as e:
        _print_problems(args.configfile, e.problems)
        return 1
    processes = args.processes or (profile_processes(args.profile) if args.profile else None)
    workflow = args.workflow or workflow_folder(args.configfile[0])
    ctx = Context(directory=args.directory.resolve(), workflow=workflow.resolve(), processes=processes)
    problems = preflight(config, ctx)
    if problems:
        _print_problems(args.configfile, problems)
        return 1
    note = f", {processes} training processes" if processes else ""
    print(f"{' + '.join(map(str, args.configfile))}: valid (schema and preflight checks{note})")
    return 0


def _print_problems(configfiles: list[Path], problems: list[str]) -> None:
    import sys

    print(f"{' + '.join(map(str, configfiles))}: {len(problems)} problem(s)", file=sys.stderr)
    for p in problems:
        print(f"  - {p}", file=sys.stderr)

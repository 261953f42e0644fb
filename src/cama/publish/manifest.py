"""The diff's ``manifest.json``: what recovery must reproduce, and what it must be given.

One JSON document, written by ``cama diff make`` and read by ``cama recover``::

    format, version          "cama-weight-diff", 1
    recipe                   how a tensor is rebuilt (below), in words
    base                     the fingerprint: {"tensors": {name: {dtype, shape, sha256}}}, every
                             base tensor, so a wrong base is caught before any output is written
    tuned.weight_files       {file: {"header": the raw header text, "size": bytes}}; recovery writes
                             the same header and the same tensor bytes, so its shards are
                             byte-identical to the tuned model's, whatever the shard layout
    files                    {name: {sha256, size}} of every other file of the tuned folder (config,
                             generation config, tokenizer, the shard index), copied verbatim
    tokenizer_sha256         one hash over the tokenizer files (names and contents)
    diff_files               {file: {size}}: the diff shards
    tensors                  one entry per tuned tensor, in the tuned files' order:
                             name, file, dtype, shape, sha256 (of the tuned bytes), kind, and
      kind "diff"            base (the base tensor it is added to), diff {file, dtype, sha256},
                             arithmetic, optionally base_rows + new_rows {sha256} (a vocabulary that
                             grew: rows past base_rows travel whole) and fix {count, index_dtype,
                             index_sha256, value_sha256}
      kind "same"            base: the tuned tensor is the base tensor, bit for bit
      kind "full"            diff {file, sha256}: the tuned tensor travels whole (no base tensor
                             to diff against, a shape that changed, or a non-float dtype)
    base_unused              base tensors that the tuned model does not have
    config                   the resolved settings of the run that made it
    stats                    counts and bytes

The recipe, per element: ``tuned = cast_T(float32(base) + float32(diff))`` (float64 when any
side is float64), rounding to nearest even. ``make`` runs the same arithmetic and compares the
result with the tuned bits; every element where it differs is stored in ``fix`` (its index and
its tuned value), so recovery is bit-exact in the tuned dtype for any diff dtype. How many
elements needed a fix is in each entry and in ``stats``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from cama.errors import FormatError
from cama.publish.errors import ManifestMismatchError, MissingFileError

FORMAT = "cama-weight-diff"
VERSION = 1
MANIFEST = "manifest.json"
RECIPE = (
    "tuned = cast_T(float32(base) + float32(diff)), float64 when any side is float64, round to nearest even; "
    "then tuned[fix.index] = fix.value. Rows past base_rows are new_rows, whole. kind same: tuned = base; "
    "kind full: tuned = diff."
)
# The tokenizer's files, as transformers and sentencepiece write them.
TOKENIZER_PATTERN = re.compile(
    r"^(tokenizer.*|special_tokens_map\.json|added_tokens\.json|chat_template.*|vocab\..*|merges\.txt)$"
)
TOKENIZER_REQUIRED = ("tokenizer.json", "tokenizer.model")


def sha256_file(path: str | os.PathLike, block: int = 1 << 24) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()


def is_tokenizer_file(name: str) -> bool:
    return bool(TOKENIZER_PATTERN.match(name))


def tokenizer_sha256(files: dict[str, dict]) -> str:
    """One hash over the tokenizer files: their names and contents' sha256, sorted by name."""
    h = hashlib.sha256()
    for name in sorted(n for n in files if is_tokenizer_file(n)):
        h.update(f"{name}\0{files[name]['sha256']}\n".encode())
    return h.hexdigest()


def other_files(folder: Path, weight_files: list[str]) -> dict[str, dict]:
    """Every file of a model folder that is not a weight shard: {name: {sha256, size}}.

    The shard index is included (recovery writes it back verbatim). A folder without a
    tokenizer is refused: a published model must carry the tokenizer it was trained with.
    """
    shards = {n for n in weight_files if n.endswith(".safetensors")}
    files = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or p.name in shards or not p.is_file():
            continue
        files[p.name] = {"sha256": sha256_file(p), "size": p.stat().st_size}
    if not any(n in files for n in TOKENIZER_REQUIRED):
        raise MissingFileError(
            f"{folder}: no tokenizer ({' or '.join(TOKENIZER_REQUIRED)}); the diff must carry the tuned "
            "model's tokenizer. Save it beside the weights (tokenizer.save_pretrained)."
        )
    return files


def write_manifest(folder: Path, manifest: dict) -> None:
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")


def load_manifest(diff_dir: str | os.PathLike) -> dict:
    path = Path(diff_dir) / MANIFEST
    if not Path(diff_dir).is_dir():
        raise MissingFileError(f"{diff_dir}: no such diff folder")
    if not path.is_file():
        raise MissingFileError(f"{path}: missing; not a diff folder made by `cama diff make`?")
    try:
        manifest = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError(f"{path}: not valid JSON ({e}); the file is damaged, download it again") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise FormatError(f"{path}: not a {FORMAT} manifest")
    if manifest.get("version") != VERSION:
        raise FormatError(f"{path}: manifest version {manifest.get('version')}; this cama reads version {VERSION}")
    for key in ("base", "tuned", "files", "diff_files", "tensors"):
        if key not in manifest:
            raise ManifestMismatchError(f"{path}: no {key!r} section")
    return manifest


def check_files(diff_dir: Path, manifest: dict) -> None:
    """The verbatim files (config, tokenizer, index) are all there and unchanged."""
    for name, meta in manifest["files"].items():
        path = diff_dir / name
        what = "the tokenizer" if is_tokenizer_file(name) else "a file"
        if not path.is_file():
            raise MissingFileError(
                f"{path}: missing, but the manifest lists it ({what} of the tuned model); "
                "the download is incomplete: fetch the diff folder again"
            )
        if path.stat().st_size != meta["size"] or sha256_file(path) != meta["sha256"]:
            raise ManifestMismatchError(f"{path}: does not match its sha256 in {MANIFEST} ({what} of the tuned model)")

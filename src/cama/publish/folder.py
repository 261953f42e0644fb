"""The hub-ready folder (``results/publish/``) and its ``SHA256SUMS``.

Layout, as it lands on the Hub::

    README.md              the model card (``cama.publish.card``), with the Hub's YAML metadata
    SHA256SUMS             every other file, ``sha256sum -c`` format
    tokenizer files        the tuned model's tokenizer, with cama's chat template
    diff/                  the weight diff (``cama diff make``): shards + manifest.json + config + tokenizer
    lora/                  the LoRA adapter, when there is one

The diff's files are hard-linked from the diff folder (copied across file systems), so the
folder costs no second copy of the weights. It is built under a temporary name and renamed.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from cama.publish.errors import ChecksumError, MissingFileError
from cama.publish.manifest import load_manifest, sha256_file

log = logging.getLogger(__name__)

SUMS = "SHA256SUMS"


def link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:  # another file system, or no hard links there
        shutil.copy2(src, dst)


def link_tree(src: Path, dst: Path) -> None:
    for p in sorted(src.rglob("*")):
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(src).parts):
            link_or_copy(p, dst / p.relative_to(src))


def list_files(folder: Path) -> list[str]:
    """Every file under ``folder`` (posix paths, sorted), hidden files and folders left out."""
    out = []
    for p in folder.rglob("*"):
        rel = p.relative_to(folder)
        if p.is_file() and not any(part.startswith(".") for part in rel.parts):
            out.append(rel.as_posix())
    return sorted(out)


def write_sums(folder: Path) -> dict[str, str]:
    """``SHA256SUMS`` over every file of ``folder`` but itself; returns {path: sha256}."""
    sums = {rel: sha256_file(folder / rel) for rel in list_files(folder) if rel != SUMS}
    (folder / SUMS).write_text("".join(f"{h}  {rel}\n" for rel, h in sums.items()))
    return sums


def read_sums(folder: Path) -> dict[str, str]:
    path = folder / SUMS
    if not path.is_file():
        raise MissingFileError(f"{path}: missing; cannot verify the download")
    sums = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        digest, sep, rel = line.partition("  ")
        if not sep or len(digest) != 64:
            raise ChecksumError(f"{path}:{n}: not a sha256sum line: {line[:80]!r}")
        sums[rel.lstrip("*")] = digest
    return sums


def verify_sums(folder: Path, select: Callable[[str], bool] | None = None) -> int:
    """Check the files of ``SHA256SUMS`` (those ``select`` accepts, if given); returns how many.

    A mismatching file is deleted, so that the next download fetches it again; a missing one is
    named. Either way ``ChecksumError``/``MissingFileError`` says which.
    """
    sums = read_sums(folder)
    chosen = [rel for rel in sums if select is None or select(rel)]
    for rel in chosen:
        path = folder / rel
        if not path.is_file():
            raise MissingFileError(f"{path}: listed in {SUMS} but not downloaded")
        got = sha256_file(path)
        if got != sums[rel]:
            path.unlink()
            raise ChecksumError(
                f"{path}: sha256 {got[:12]}…, {SUMS} says {sums[rel][:12]}…; the file was removed, run the download again"
            )
    return len(chosen)


def build_publish_folder(
    *,
    diff: str | os.PathLike,
    tuned: str | os.PathLike,
    out: str | os.PathLike,
    settings: dict,
    adapter: str | os.PathLike | None = None,
    evals: list[str | os.PathLike] = (),
    corpus: dict | None = None,
    instruct_stats: str | os.PathLike | None = None,
) -> dict:
    """Assemble ``out`` from the diff, the adapter, the tokenizer and a card; return stats."""
    from transformers import AutoTokenizer

    from cama.chat import with_chat_template
    from cama.publish.card import render_card

    diff, tuned, out = Path(diff), Path(tuned), Path(out)
    manifest = load_manifest(diff)
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        link_tree(diff, tmp / "diff")
        if adapter:
            if not (Path(adapter) / "adapter_config.json").is_file():
                raise MissingFileError(f"{adapter}: no adapter_config.json; not a peft adapter folder")
            link_tree(Path(adapter), tmp / "lora")
        tok = with_chat_template(AutoTokenizer.from_pretrained(str(tuned)))
        tok.save_pretrained(str(tmp))
        card = render_card(
            manifest=manifest,
            settings=settings["card"],
            has_adapter=bool(adapter),
            evals=list(evals),
            tuned=tuned,
            corpus=corpus,
            instruct_stats=instruct_stats,
            repo_id=settings.get("repo_id"),
        )
        (tmp / "README.md").write_text(card, encoding="utf-8")
        sums = write_sums(tmp)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    stats = {
        "files": len(sums) + 1,
        "bytes": sum((out / rel).stat().st_size for rel in sums),
        "weights": "diff" + (" + lora adapter" if adapter else ""),
        "diff_bytes": manifest["stats"]["diff_bytes"],
        "evals": [str(e) for e in evals],
    }
    log.info("hub-ready folder %s: %d files, %.1f MB (%s)", out, stats["files"], stats["bytes"] / 1e6, stats["weights"])
    return stats


def write_card_html(folder: str | os.PathLike, out: str | os.PathLike) -> None:
    """A page for ``snakemake --report``: the card as written, then every file with size and sha256."""
    import html

    from cama.io import atomic_path

    folder = Path(folder)
    sums = read_sums(folder)
    rows = "".join(
        f"<tr><td>{html.escape(rel)}</td><td style='text-align:right'>{(folder / rel).stat().st_size:,}</td>"
        f"<td><code>{h}</code></td></tr>"
        for rel, h in sums.items()
    )
    page = (
        "<!doctype html><meta charset='utf-8'><title>model card</title>"
        f"<h2>{html.escape(folder.name)}/README.md</h2>"
        f"<pre style='white-space:pre-wrap'>{html.escape((folder / 'README.md').read_text(encoding='utf-8'))}</pre>"
        f"<h2>Files ({len(sums)}, {SUMS})</h2><table><tr><th>path</th><th>bytes</th><th>sha256</th></tr>{rows}</table>"
    )
    with atomic_path(out) as tmp:
        tmp.write_text(page, encoding="utf-8")

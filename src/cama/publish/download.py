"""``cama download --repo-id ORG/NAME [--only diff|lora|all] [--recover --base B]``.

``snapshot_download`` fetches the repository into a local folder. A dropped connection resumes
from the byte it reached (HTTP ``Range``, retried within the run); a rerun after a killed run
skips the files that were finished and fetches the cut one again (huggingface_hub 2.x keeps
partial files per process: its PR #4228), and the killed run's partial file is removed. Then
every downloaded file is checked against ``SHA256SUMS``; a file that does not match is removed (the next run fetches it
again) and named. With ``--recover``, the diff is then turned into the tuned model
(``cama recover``): download, verify, recover and verify in one command. A token, needed for a
private repo only, comes from ``HF_TOKEN`` in the environment.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from cama.publish.folder import SUMS, verify_sums
from cama.publish.upload import _hub_call, hub_token

log = logging.getLogger(__name__)

PARTS = {"diff": "diff/", "lora": "lora/"}


def selected(rel: str, only: str) -> bool:
    """The top-level files (card, sums, tokenizer) always; below that, only the chosen part."""
    return "/" not in rel or only == "all" or rel.startswith(PARTS[only])


def download(
    *,
    repo_id: str,
    local_dir: str | os.PathLike,
    only: str = "all",
    revision: str | None = None,
    recover_base: str | os.PathLike | None = None,
    recover_out: str | os.PathLike | None = None,
) -> dict:
    from huggingface_hub import snapshot_download

    if only not in ("all", *PARTS):
        raise ValueError(f"--only: {only!r} is not one of all, diff, lora")
    local_dir = Path(local_dir)
    skip = [f"{part}*" for name, part in PARTS.items() if only not in ("all", name)]
    path = _hub_call(
        f"downloading {repo_id}", snapshot_download,
        repo_id=repo_id, revision=revision, local_dir=str(local_dir), ignore_patterns=skip or None, token=hub_token(required=False),
    )  # fmt: skip
    n = verify_sums(Path(path), select=lambda rel: selected(rel, only))
    log.info("%s: %d files downloaded and verified against %s", local_dir, n, SUMS)
    # a killed run's partial files (huggingface_hub names them per process and cannot remove them)
    for stale in (local_dir / ".cache" / "huggingface" / "download").rglob("*.incomplete"):
        log.info("removing %s, left by an interrupted download", stale)
        stale.unlink(missing_ok=True)
    print(f"downloaded {repo_id} to {local_dir}: {n} files match {SUMS}")
    result = {"repo_id": repo_id, "local_dir": str(local_dir), "verified": n}
    if recover_base:
        from cama.publish.recover import recover

        if only == "lora":
            raise ValueError("--recover needs the diff: use --only diff or --only all")
        out = Path(recover_out) if recover_out else local_dir.with_name(local_dir.name + "-model")
        result["recover"] = recover(base=recover_base, diff=local_dir / "diff", out=out)
        print(f"recovered the tuned model into {out}: every tensor verified")
    return result


# ----------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo-id", required=True, help="ORG/NAME on the Hub (HF_ENDPOINT picks another Hub)")
    parser.add_argument("--only", default="all", choices=["all", "diff", "lora"], help="what to fetch besides the card and tokenizer")
    parser.add_argument("--local-dir", default=None, help="where the repository's files go (default ./NAME)")
    parser.add_argument("--revision", default=None, help="branch, tag or commit (default main)")
    parser.add_argument("--recover", action="store_true", help="then rebuild the tuned model from --base and the diff")
    parser.add_argument("--base", default=None, help="with --recover: the base model folder")
    parser.add_argument("--out", default=None, help="with --recover: the model folder to write (default ./NAME-model)")


def run(args: argparse.Namespace) -> int:
    if args.recover and not args.base:
        raise SystemExit("cama download: --recover needs --base (the base model folder)")
    local_dir = args.local_dir or args.repo_id.rstrip("/").split("/")[-1]
    download(repo_id=args.repo_id, local_dir=local_dir, only=args.only, revision=args.revision,
             recover_base=args.base if args.recover else None, recover_out=args.out)  # fmt: skip
    return 0

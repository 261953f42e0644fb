"""The atomic save of an HF model folder with its resolved config beside the weights.

Every rank calls ``save_folder`` (under ZeRO-3 gathering the weights is a collective: rank 0
alone would deadlock, ANCHORS pitfalls); rank 0 writes into ``<out>.tmp-<pid>`` and renames it
to ``out`` when everything (weights, tokenizer, resolved config) is there, so a folder
named ``out`` is always complete.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from cama.io import write_json

log = logging.getLogger(__name__)

TOKENIZER_FILES = (
    "tokenizer.model",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
)


def copy_tokenizer(tokenizer_dir: str | os.PathLike, out_dir: str | os.PathLike) -> None:
    """Copy the HF tokenizer files that exist in ``tokenizer_dir`` into ``out_dir``."""
    src = Path(tokenizer_dir)
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copyfile(src / name, Path(out_dir) / name)


def readable(folder: str | os.PathLike) -> None:
    """Make every file world-readable: safetensors writes its files 0600, and the weights are
    meant to be loaded by anyone."""
    for f in Path(folder).iterdir():
        if f.is_file():
            f.chmod(0o644)


def replace_dir(tmp: str | os.PathLike, out: str | os.PathLike) -> None:
    """Put the finished folder ``tmp`` in place of ``out`` (removing an older ``out``)."""
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)


def _is_peft(model) -> bool:
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(model, PeftModel)


def save_folder(
    trainer,
    out_dir: str | os.PathLike,
    *,
    rank: int,
    precision: str,
    files: Mapping[str, object] = (),
    tokenizer_dir: str | os.PathLike | None = None,
    max_shard_size: str = "5GB",
) -> None:
    """The trained model as an HF folder: consolidated weights in the trained precision, the
    tokenizer, and ``files`` (name -> JSON object, e.g. the resolved config) beside them.

    A peft model writes its adapter (``PeftModel.save_pretrained``, fp32 as trained), any other
    model its full weights (``save_pretrained``, safetensors, sharded past ``max_shard_size``).
    """
    import torch

    if trainer.is_deepspeed_enabled:
        state_dict = trainer.accelerator.get_state_dict(trainer.deepspeed)  # collective under ZeRO-3
    else:
        state_dict = trainer.accelerator.get_state_dict(trainer.model)
    if rank == 0:
        model = trainer.accelerator.unwrap_model(trainer.model, keep_torch_compile=False)
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        if dtype is not None and not _is_peft(model):  # as trained; ZeRO-3's gathered copy already is 16-bit
            state_dict = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state_dict.items()}
            model.config.dtype = dtype
        model.config.use_cache = True
        out = Path(out_dir)
        tmp = out.with_name(out.name + f".tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        if _is_peft(model):  # the adapter only: peft picks its weights out of the full state dict
            model.save_pretrained(str(tmp), state_dict=state_dict)
        else:
            model.save_pretrained(str(tmp), state_dict=state_dict, max_shard_size=max_shard_size)
        if tokenizer_dir is not None:
            copy_tokenizer(tokenizer_dir, tmp)
        for name, obj in dict(files).items():
            write_json(tmp / name, obj)
        readable(tmp)
        replace_dir(tmp, out)
        log.info("saved %s", out)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()

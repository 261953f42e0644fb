"""``cama merge``: base model + LoRA adapter -> one full HF model folder, with the chat template.

    cama merge --base results/pretrain/model --adapter results/lora/adapter --out results/lora/merged \\
        --dtype bf16 --max-shard-size 5GB

The base is loaded in fp32 and the adapter merged into it there (peft's ``merge_and_unload``:
W + (α/r)·B·A), then the result is cast once to ``--dtype``. Merging in fp32 and rounding
once is what keeps the merged model equal to base + adapter; the seed's users merged into
fp16/8-bit weights and got models that did worse than the adapter (KnowLM #50). fp32 needs
4 bytes per parameter of RAM (52 GB for a 13B).

The folder is written under a temporary name and renamed when complete: safetensors, sharded
above ``--max-shard-size``, the tokenizer with ``cama.chat.CHAT_TEMPLATE`` (so
``apply_chat_template`` and vLLM prompt it as training did), and ``merge_config.json`` (the
base, the adapter and its LoRA config, the dtype).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
from pathlib import Path

from cama.errors import ConfigError

log = logging.getLogger(__name__)

DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def merged_model(base: str | os.PathLike, adapter: str | os.PathLike):
    """``merge_and_unload`` of ``adapter`` on ``base``, in fp32 (an in-memory HF model)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    return PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()


def merge(
    *,
    base: str | os.PathLike,
    adapter: str | os.PathLike,
    out: str | os.PathLike,
    dtype: str,
    max_shard_size: str,
) -> dict:
    """Write the merged model to ``out`` (atomically); return what was written."""
    import torch

    from cama.lora.data import load_tokenizer
    from cama.pretrain.model import readable

    if dtype not in DTYPES:
        raise ConfigError(f"lora.merge.dtype: {dtype!r} is not one of {', '.join(DTYPES)}")
    for path, what in ((base, "base model"), (adapter, "adapter")):
        if not Path(path).is_dir():
            raise ConfigError(f"merge: the {what} {path} does not exist")
    if not (Path(adapter) / "adapter_config.json").is_file():
        raise ConfigError(f"merge: {adapter} has no adapter_config.json (not a peft adapter folder)")
    model = merged_model(base, adapter)
    model = model.to(getattr(torch, DTYPES[dtype]))
    model.config.dtype = getattr(torch, DTYPES[dtype])
    model.config.use_cache = True
    out = Path(out)
    tmp = out.with_name(out.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp), max_shard_size=max_shard_size)
    # the adapter folder carries the tokenizer training used; the base's is the fallback
    tok_dir = adapter if (Path(adapter) / "tokenizer_config.json").is_file() else base
    load_tokenizer(tok_dir).save_pretrained(str(tmp))
    info = {
        "base": str(base),
        "adapter": str(adapter),
        "dtype": dtype,
        "merged_in": "float32",
        "lora": json.loads((Path(adapter) / "adapter_config.json").read_text()),
        "params": sum(p.numel() for p in model.parameters()),
        "shards": sorted(p.name for p in tmp.glob("*.safetensors")),
    }
    (tmp / "merge_config.json").write_text(json.dumps(info, indent=1, ensure_ascii=False))
    readable(tmp)
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    log.info("merged %s + %s -> %s (%s, %d shard(s))", base, adapter, out, dtype, len(info["shards"]))
    return info


# ----------------------------------------------------------------------------- cama merge


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base", required=True, help="the HF model the adapter was trained on")
    parser.add_argument("--adapter", required=True, help="the peft adapter folder (results/lora/adapter)")
    parser.add_argument("--out", required=True, help="the merged model folder (results/lora/merged)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default=None, help="weights as saved (default: lora.merge.dtype's)")
    parser.add_argument("--max-shard-size", default=None, help="largest safetensors file (default: lora.merge's)")


def run(args: argparse.Namespace) -> int:
    from cama.config import from_section
    from cama.lora.settings import MergeSettings

    defaults = from_section(MergeSettings, {})  # the schema's, the one home of defaults
    merge(base=args.base, adapter=args.adapter, out=args.out, dtype=args.dtype or defaults.dtype,
          max_shard_size=args.max_shard_size or defaults.max_shard_size)  # fmt: skip
    return 0

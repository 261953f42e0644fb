"""A LLaMA initialised from a config block, for the demo (which has no base model).

The weights depend only on the shape, the vocabulary and ``model.init.seed``. Embeddings
are untied: tied ones break ``safe_serialization`` under ZeRO-3 (ANCHORS, pitfalls), and
LLaMA does not tie them either. The tokenizer is copied into the model folder, so the folder
is a complete HF model, as a real run's base model is.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from pathlib import Path

from cama.errors import ConfigError
from cama.io import write_json
from cama.pretrain.config import ModelInit, check_model_init
from cama.train.save import copy_tokenizer, readable, replace_dir

log = logging.getLogger(__name__)


def llama_config(init: ModelInit, vocab_size: int, bos_id: int = 1, eos_id: int = 2):
    """The ``LlamaConfig`` for ``init`` over a vocabulary of ``vocab_size``."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=init.hidden_size,
        intermediate_size=init.intermediate_size,
        num_hidden_layers=init.layers,
        num_attention_heads=init.heads,
        num_key_value_heads=init.kv_heads,
        max_position_embeddings=init.max_position_embeddings,
        rope_theta=init.rope_theta,
        rms_norm_eps=init.rms_norm_eps,
        initializer_range=init.initializer_range,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=None,  # LLaMA has no pad token; the collator masks padding with -100
        tie_word_embeddings=False,
    )


def vocab_of(tokenizer_dir: str | os.PathLike) -> tuple[int, int, int]:
    """(vocabulary size, bos id, eos id) of an HF tokenizer folder."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    except OSError as e:
        raise ConfigError(f"pretrain: {tokenizer_dir} is not a loadable tokenizer folder: {e}") from None
    return len(tok), tok.bos_token_id, tok.eos_token_id


def init_model(
    *,
    tokenizer_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    init: ModelInit,
    out_stats: str | os.PathLike | None = None,
) -> dict:
    """The ``init_base_model`` rule: write a seeded random LLaMA + tokenizer to ``out_dir``."""
    import torch
    from transformers import LlamaForCausalLM

    problems = check_model_init(init)
    if problems:
        raise ConfigError(problems)
    vocab, bos, eos = vocab_of(tokenizer_dir)
    config = llama_config(init, vocab, bos, eos)
    torch.manual_seed(init.seed)  # the init draws from torch's global generator
    model = LlamaForCausalLM(config)
    out = Path(out_dir)
    tmp = out.with_name(out.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp), safe_serialization=True)
    copy_tokenizer(tokenizer_dir, tmp)
    readable(tmp)
    replace_dir(tmp, out)  # the folder appears whole, or not at all
    params = sum(p.numel() for p in model.parameters())
    stats = {
        "params": params,
        "non_embedding_params": params - model.get_input_embeddings().weight.numel(),
        "vocab_size": vocab,
        "init": dataclasses.asdict(init),
    }
    log.info("initialised a %.2fM-parameter LLaMA -> %s", params / 1e6, out)
    if out_stats:
        write_json(out_stats, stats)
    return stats

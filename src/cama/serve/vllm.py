"""``cama serve --engine vllm``: the command line of vLLM's own OpenAI server for a model the pipeline made.

For a load that outgrows one process (vLLM's paged attention, tensor parallelism), the same
models are served by vLLM with the same API and the same prompts:

- the merged model: ``vllm serve results/lora/merged --served-model-name merged ...``;
- a base (or pretrained) model with LoRA adapters: ``--enable-lora --lora-modules name=path``,
  with ``--max-lora-rank`` the smallest of vLLM's allowed ranks that holds the adapters' ``r``
  and ``--max-loras`` their number; the client picks an adapter by ``model``, as with cama.

vLLM needs a chat template in the tokenizer and refuses chat requests (400) without one; a
LLaMA-1 tokenizer has none. cama's template (``cama.chat.CHAT_TEMPLATE``) is always passed with
``--chat-template``, so vLLM formats prompts exactly as training did, whatever the folder holds.

The API key goes to vLLM through its environment (``VLLM_API_KEY``), never on the command line,
where ``ps`` and logs would show it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from cama.chat import CHAT_TEMPLATE
from cama.errors import ConfigError
from cama.serve.models import parse_adapter

LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # vLLM's choices for --max-lora-rank


def chat_template_file(folder: str | os.PathLike | None = None) -> Path:
    """cama's chat template in a file (named by its hash, so a changed template is a new file)."""
    digest = hashlib.sha256(CHAT_TEMPLATE.encode()).hexdigest()[:12]
    path = Path(folder or tempfile.gettempdir()) / f"cama-chat-template-{digest}.jinja"
    if not path.is_file() or path.read_text(encoding="utf-8") != CHAT_TEMPLATE:
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(CHAT_TEMPLATE, encoding="utf-8")
        tmp.replace(path)
    return path


def lora_rank(adapter: Path) -> int:
    """The adapter's LoRA rank ``r``, from its ``adapter_config.json``."""
    config = adapter / "adapter_config.json"
    try:
        return int(json.loads(config.read_text(encoding="utf-8"))["r"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"--adapter {adapter}: cannot read the LoRA rank from {config}: {e}") from None


def vllm_command(model: str | os.PathLike, name: str | None = None, adapters: list[str] = (),
                 host: str = "127.0.0.1", port: int = 8000, max_model_len: int | None = None,
                 template_dir: str | os.PathLike | None = None, extra: list[str] = ()) -> list[str]:  # fmt: skip
    """The argv of ``vllm serve`` for ``model`` (served as ``name``) and its LoRA ``adapters`` (NAME=PATH)."""
    model = Path(model)
    if not (model / "config.json").is_file():
        raise ConfigError(f"--model {model}: not a model folder (no config.json)")
    argv = ["vllm", "serve", str(model), "--served-model-name", name or model.name,
            "--host", host, "--port", str(port), "--chat-template", str(chat_template_file(template_dir))]  # fmt: skip
    if max_model_len:
        argv += ["--max-model-len", str(max_model_len)]
    if adapters:
        named = [parse_adapter(a) for a in adapters]
        for label, path in named:
            if not (path / "adapter_config.json").is_file():
                raise ConfigError(f"--adapter {label}={path}: not a peft adapter folder (no adapter_config.json)")
        rank = max(lora_rank(path) for _, path in named)
        fits = [r for r in LORA_RANKS if r >= rank]
        if not fits:
            raise ConfigError(f"LoRA rank {rank} is above vLLM's largest, {LORA_RANKS[-1]}")
        argv += ["--enable-lora", "--lora-modules", *(f"{label}={path}" for label, path in named),
                 "--max-lora-rank", str(fits[0]), "--max-loras", str(len(named))]  # fmt: skip
    return argv + list(extra)


def vllm_env(api_key_env: str, environ: dict | None = None) -> dict:
    """vLLM's environment: ours, with the key (if ``api_key_env`` holds one) as ``VLLM_API_KEY``."""
    env = dict(os.environ if environ is None else environ)
    if env.get(api_key_env):
        env["VLLM_API_KEY"] = env[api_key_env]
    return env

"""Helpers for the publish tests: HF model folders written in any layout, "training" that moves weights.

A tuned model is the base with most tensors moved a little (as training does) and the norms
left alone (as a LoRA merge leaves them), written as safetensors in the layout a test asks for.
"""

from __future__ import annotations

import filecmp
import json
import shutil
from pathlib import Path

from cama.publish.safetensors_io import INDEX_NAME, SINGLE_NAME


def load_state(folder: Path) -> dict:
    from safetensors.torch import load_file

    files = sorted(folder.glob("*.safetensors"))
    state = {}
    for f in files:
        state.update(load_file(f))
    return state


def save_model(state: dict, folder: Path, like: Path, shards: int = 1, config: dict | None = None, tokenizer: bool = True) -> Path:
    """Write ``state`` as an HF folder: config (``like``'s, updated), tokenizer, weights in ``shards`` files."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    cfg = json.loads((like / "config.json").read_text())
    cfg.update(config or {})
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))
    if tokenizer:
        for p in like.iterdir():
            if p.name.startswith(("tokenizer", "special_tokens", "chat_template")):
                shutil.copyfile(p, folder / p.name)
    names = list(state)
    if shards == 1:
        save_file({n: state[n].contiguous() for n in names}, str(folder / SINGLE_NAME), metadata={"format": "pt"})
        return folder
    per = -(-len(names) // shards)
    weight_map = {}
    for i in range(shards):
        fname = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = names[i * per : (i + 1) * per]
        save_file({n: state[n].contiguous() for n in part}, str(folder / fname), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, fname))
    total = sum(t.numel() * t.element_size() for t in state.values())
    (folder / INDEX_NAME).write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    return folder


def trained(state: dict, seed: int = 1, scale: float = 0.02, dtype=None) -> dict:
    """The base moved a little, as training moves it; norms unchanged; optionally cast."""
    import torch

    g = torch.Generator().manual_seed(seed)
    out = {}
    for n, t in state.items():
        t = t.float()
        if "norm" not in n:
            t = t + scale * torch.randn(t.shape, generator=g) * t.std()
        out[n] = t.to(dtype or state[n].dtype)
    return out


def same_files(a: Path, b: Path) -> list[str]:
    """Names of files that differ (or are missing) between two folders; [] when identical."""
    names = sorted({p.name for p in a.iterdir()} | {p.name for p in b.iterdir()})
    return [n for n in names if not ((a / n).is_file() and (b / n).is_file() and filecmp.cmp(a / n, b / n, shallow=False))]

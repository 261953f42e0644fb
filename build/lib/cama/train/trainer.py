"""The HF Trainer, as the core runs it: in-order data, tokens/s and MFU in the logs, complete
checkpoints only, and the checks that make a resume exact.

**Complete checkpoints.** Each ``checkpoint-N`` holds the DeepSpeed/optimizer state, the
scheduler, every rank's RNG and the trainer state. After a checkpoint is fully written, all
ranks meet at a barrier and rank 0 writes ``cama_config.json`` (the resolved config) into it:
a checkpoint without that marker was cut short by a kill and is ignored. The Trainer then
skips the batch indices already trained (without reading them), so no sample is repeated or
skipped, provided the global batch size is unchanged (``check_resume``, naming the key).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

from cama.io import write_json
from cama.train.metrics import mfu

log = logging.getLogger("cama.train")

MARKER = "cama_config.json"  # written last into a checkpoint: its presence means "complete"
_CKPT = re.compile(r"^checkpoint-(\d+)$")


# ----------------------------------------------------------------------------- checkpoints


def complete_checkpoints(folder: str | os.PathLike) -> list[Path]:
    """``checkpoint-N`` folders that hold the completion marker, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _CKPT.match(p.name)) and (p / MARKER).is_file()]
    return [p for _, p in sorted(found)]


def last_checkpoint(folder: str | os.PathLike) -> Path | None:
    done = complete_checkpoints(folder)
    return done[-1] if done else None


def checkpoint_step(path: Path | None) -> int:
    return int(path.name.split("-")[1]) if path is not None else 0


def check_resume(previous: dict, current: dict, key: str, order_keys: tuple[str, ...] = ("seed", "max_steps")) -> list[str]:
    """A resumed run must draw the same samples per step: same data order and global batch."""
    problems = []
    before, now = previous.get("derived", {}), current.get("derived", {})
    if before.get("global_batch_size") != now.get("global_batch_size"):
        problems.append(
            f"{key}.global_batch_size: {now.get('global_batch_size')} differs from "
            f"{before.get('global_batch_size')} in the checkpoint being resumed; the data position "
            "would not match (change it back, or start afresh by removing the checkpoint folder)"
        )
    for name in order_keys:
        was, now_ = previous.get(key, {}).get(name), current[key].get(name)
        if was != now_:
            problems.append(
                f"{key}.{name}: {now_} differs from {was} in the checkpoint being resumed "
                "(the data order depends on it)"
            )
    return problems


# ----------------------------------------------------------------------------- the trainer


def make_trainer_class():
    """The Trainer, with in-order sampling, token counting, MFU in the logs, a data-order log."""
    import torch
    from torch.utils.data import SequentialSampler
    from transformers import Trainer

    class CamaTrainer(Trainer):
        cama_flops_per_token: Callable[[int], float] | None = None  # sequence length -> FLOPs per token
        cama_peak: float | None = None
        cama_sample_log: Path | None = None

        def _get_train_sampler(self, train_dataset=None):
            # the dataset's own order is the shuffle; keeping it makes step k's samples fixed
            return SequentialSampler(train_dataset if train_dataset is not None else self.train_dataset)

        def training_step(self, model, inputs, num_items_in_batch=None):
            index = inputs.pop("sample_index", None)
            if self.cama_sample_log is not None and index is not None:
                step = self.state.global_step + 1
                micro = self._cama_micro[1] + 1 if getattr(self, "_cama_micro", (0, 0))[0] == step else 0
                self._cama_micro = (step, micro)
                with open(self.cama_sample_log, "a") as f:  # tests only: a host copy per micro-batch
                    f.write(json.dumps({"step": step, "micro": micro, "ids": index.tolist()}) + "\n")
            labels = inputs["labels"]  # (batch, seq)
            if not hasattr(self, "_cama_tokens"):
                self._cama_tokens = torch.zeros((), dtype=torch.float64, device=labels.device)
                self._cama_seq_sum, self._cama_batches = 0, 0
            self._cama_tokens += (labels != -100).sum()  # stays on the device: no sync per step
            self._cama_seq_sum += labels.shape[1]
            self._cama_batches += 1
            return super().training_step(model, inputs, num_items_in_batch)

        def log(self, logs: dict, start_time: float | None = None) -> None:
            now = time.perf_counter()
            if "loss" in logs and hasattr(self, "_cama_tokens"):
                tokens = self._cama_tokens.clone()
                if torch.distributed.is_available() and torch.distributed.is_initialized():
                    torch.distributed.all_reduce(tokens)  # every rank logs, so every rank is here
                tokens = float(tokens.item())  # a sync point, once per logging step
                last = getattr(self, "_cama_last", (self._cama_t0, 0.0))
                dt = now - last[0]
                tok_s = (tokens - last[1]) / dt if dt > 0 else 0.0
                self._cama_last = (now, tokens)
                seq = self._cama_seq_sum / max(self._cama_batches, 1)
                logs["tokens_per_s"] = round(tok_s, 1)
                logs["tokens"] = int(tokens)
                ftok = self.cama_flops_per_token(int(seq)) if self.cama_flops_per_token else None
                value = mfu(tok_s, ftok, self.cama_peak, self.args.world_size) if ftok else None
                if value is not None:
                    logs["mfu"] = round(value, 4)
                if self.is_world_process_zero():
                    log.info(
                        "step %d/%d loss %.4f lr %.3g grad_norm %s tokens/s %.0f%s",
                        self.state.global_step, self.state.max_steps, logs["loss"],
                        logs.get("learning_rate", float("nan")), _fmt(logs.get("grad_norm")), tok_s,
                        f" mfu {100 * value:.1f}%" if value is not None else "",
                    )  # fmt: skip
            elif "eval_loss" in logs and self.is_world_process_zero():
                log.info("step %d/%d validation loss %.4f", self.state.global_step, self.state.max_steps, logs["eval_loss"])
            super().log(logs, start_time)

        def save_model(self, output_dir=None, _internal_call=False):
            # Inside a checkpoint the DeepSpeed state already holds the weights; gathering a
            # 16-bit copy too would cost a full all-gather and the model's size on disk each time.
            if _internal_call and self.is_deepspeed_enabled:
                return
            super().save_model(output_dir, _internal_call)

    return CamaTrainer


def _fmt(x) -> str:
    return "n/a" if x is None else f"{float(x):.3g}"


def mark_complete_callback(resolved_config: dict, rank: int, global_batch_size: int):
    """After every rank has written its part of a checkpoint, rank 0 marks it complete."""
    import torch
    from transformers import TrainerCallback

    class MarkComplete(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                torch.distributed.barrier()  # all ranks' shards and RNG files are on disk
            if rank == 0:
                folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                write_json(folder / MARKER, {**resolved_config, "step": state.global_step,
                                             "samples_consumed": state.global_step * global_batch_size})  # fmt: skip

    return MarkComplete()

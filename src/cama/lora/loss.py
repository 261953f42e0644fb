"""The language-model loss on the answer tokens only, without materialising the logits.

``lm_loss(hidden, weight, labels)`` is cross-entropy of ``hidden @ weight.T`` against the
shifted ``labels`` (-100 ignored), summed and divided by ``num_items`` (the Trainer's count of
label tokens over the accumulated micro-batches) or by this batch's count.

Two things make it cheaper than ``LlamaForCausalLM``'s own loss, exactly:

- only the positions whose target is an answer token go through the LM head. The prompt's
  logits are never computed (alpaca-lora's batches are ~half prompt);
- those positions go through in chunks of ``chunk`` rows, and each chunk's gradient with
  respect to its hidden states is computed right there in the forward pass (softmax minus the
  one-hot target, times the head's weight), as Liger's fused linear cross-entropy does. So at
  most ``chunk × vocabulary`` logits exist at once (in fp32, for the log-sum-exp), instead of
  ``tokens × vocabulary`` in bf16 plus their fp32 upcast plus its gradient: at 16k tokens and a
  32k vocabulary that is 6 GB against 0.5 GB.

The head's weight is frozen under LoRA, so no weight gradient is needed; when it requires a
gradient (``lm_head`` made trainable), ``lm_loss`` falls back to the plain computation.
"""

from __future__ import annotations

IGNORE = -100


def shifted_targets(labels):
    """(positions, targets): flat indices of the positions that predict an answer token, and those tokens."""
    import torch

    flat = labels.reshape(-1)  # (B·T,)
    target = torch.full_like(flat, IGNORE)
    target[:-1] = flat[1:]
    if labels.dim() == 2 and labels.shape[0] > 1:  # no shift across rows of a padded batch
        target.view(labels.shape)[:, -1] = IGNORE
    pos = (target != IGNORE).nonzero().squeeze(1)  # a device sync on GPU (the count)
    return pos, target[pos]


def _make_function():
    import torch

    class LinearCrossEntropy(torch.autograd.Function):
        """Sum of cross-entropy over rows of ``hidden @ weight.T``; the gradient made in the forward pass."""

        @staticmethod
        def forward(ctx, hidden, weight, targets, scale, chunk):
            # hidden (N, d), weight (V, d), targets (N,); returns scale · Σ CE
            total = torch.zeros((), dtype=torch.float32, device=hidden.device)
            grad = torch.empty_like(hidden) if ctx.needs_input_grad[0] else None
            for s in range(0, hidden.shape[0], chunk):
                h, t = hidden[s : s + chunk], targets[s : s + chunk]
                logits = (h @ weight.t()).float()  # (c, V) fp32
                lse = torch.logsumexp(logits, dim=-1)  # (c,)
                total += (lse - logits.gather(1, t[:, None]).squeeze(1)).sum()
                if grad is not None:
                    p = logits.sub_(lse[:, None]).exp_()  # softmax, in place of the logits
                    p[torch.arange(len(t), device=t.device), t] -= 1.0
                    grad[s : s + chunk] = (p.mul_(scale).to(h.dtype)) @ weight
            ctx.save_for_backward(grad if grad is not None else torch.empty(0))
            return total * scale

        @staticmethod
        def backward(ctx, grad_out):
            (grad,) = ctx.saved_tensors
            return grad * grad_out.to(grad.dtype), None, None, None, None

    return LinearCrossEntropy


_FUNCTION = None


def lm_loss(hidden, weight, labels, num_items=None, *, positions=None, targets=None, chunk: int = 4096,
            fused: bool = True):
    """Mean CE over the answer tokens (sum / ``num_items`` when given); see the module docstring.

    ``hidden`` (B, T, d) final hidden states, ``weight`` (V, d) the LM head, ``labels`` (B, T)
    unshifted (-100 ignored). ``positions``/``targets``: the flat positions that predict an
    answer token and those tokens, when the collator has found them on the CPU already
    (``cama.lora.packing.PackedCollator``); otherwise they are found here, which costs one
    device sync (the count sizes the gather).
    """
    import torch

    global _FUNCTION
    if positions is None:
        positions, targets = shifted_targets(labels)
    pos = positions
    h = hidden.reshape(-1, hidden.shape[-1]).index_select(0, pos)  # (N, d)
    denom = num_items if num_items is not None else max(int(targets.numel()), 1)
    if isinstance(denom, torch.Tensor):
        denom = denom.to(h.device, torch.float32)
    if not fused or weight.requires_grad:
        logits = (h @ weight.t()).float()
        return torch.nn.functional.cross_entropy(logits, targets, reduction="sum") / denom
    if _FUNCTION is None:
        _FUNCTION = _make_function()
    scale = 1.0 / denom if not isinstance(denom, torch.Tensor) else (1.0 / denom)
    return _FUNCTION.apply(h, weight, targets, scale, chunk)

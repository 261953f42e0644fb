"""publish: a streaming weight diff with a per-tensor manifest, the LoRA, a model card, the Hub.

- ``diff``: ``cama diff make``, tuned − base, tensor by tensor, bit-exact recovery guaranteed.
- ``recover``: ``cama recover``, base + diff -> the tuned model, every tensor verified.
- ``safetensors_io``: the file format, read and written a chunk at a time.
- ``manifest``: what the diff records (fingerprint, hashes, headers, tokenizer, config).
- ``folder``: the hub-ready folder (diff, LoRA, tokenizer, card, SHA256SUMS) and its checks.
- ``card``: the model card.
- ``hub``: ``cama publish`` and ``cama download`` with huggingface_hub.
"""

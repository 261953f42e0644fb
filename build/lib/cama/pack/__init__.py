"""pack: held-out split, tokenizer, sentence-packed Megatron shards and the blend loader.

Modules follow the data flow:

- ``split``      hold out documents per language by a hash of their id -> heldout/{lang}.jsonl
- ``tokenizer``  load the base model's tokenizer, or train a LLaMA-style sentencepiece BPE
- ``sentences``  sentence boundaries as UTF-8 byte offsets (zh regex, en blingfire, code lines)
- ``packing``    greedy whole-sentence packing and best-fit-decreasing, pure functions
- ``indexed``    the Megatron MMIDIDX v1 ``.bin/.idx`` format, writer and reader side by side
- ``shards``     the stage: encode, pack and write shards in parallel, then blend.json + stats
- ``dataset``    a PyTorch Dataset over blend.json for the training stage
"""

"""lora: LoRA instruction tuning on the instruct stage's records, and the merge into a full model.

Modules follow the run:

- ``data``     records -> token ids + the assistant-only mask through the one chat template;
               the cutoff policy and every rejected record, counted
- ``packing``  padding-free rows: several examples a row, positions restarting, attention per example
- ``model``    the frozen base + peft adapters, packed attention on each device, the packed forward
- ``loss``     cross-entropy on the answer tokens only, chunked, without materialising the logits
- ``merge``    ``cama merge``: base + adapter -> a full HF folder with the chat template
"""

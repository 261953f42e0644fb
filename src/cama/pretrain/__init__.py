"""pretrain: continued pretraining of a LLaMA on the packed blend (HF Trainer + DeepSpeed ZeRO).

Modules follow the run:

- ``config``     TrainConfig / ModelInit dataclasses, checks that name the key, resolved config
- ``model``      a seeded tiny LLaMA for the demo (untied embeddings, safetensors + tokenizer)
- ``deepspeed``  the ZeRO config dict from the workflow config, and the choice of stage
- ``launch``     argv for 1 process, N processes (torchrun) or a Slurm multi-node job
- ``metrics``    FLOPs per token, MFU, the loss curve
- ``train``      the entry point: ``pretrain(...)``, resumable after ``kill -9``
"""

"""train: the training core that every training stage shares (pretrain now, lora next).

A stage is a thin user: it builds its settings, its data and its model factory, and calls
``cama.train.run.fit``. Everything else is here, once:

- ``launch``     start a stage's training module as 1 process, torchrun on a node, or srun +
                 torchrun across Slurm nodes; the launcher owns its children (``worker``:
                 each process dies with its parent, so ``kill -9`` of the job stops them all)
- ``settings``   ``TrainSettings`` (batch, schedule, AdamW, precision, kernels, ZeRO,
                 checkpoints, logs): fields mirror a config section, defaults in the schema only
- ``deepspeed``  the DeepSpeed dict, the choice of ZeRO stage, ``fit_zero3``
- ``trainer``    the HF Trainer subclass: in-order data, tokens/s and MFU in the logs,
                 complete-checkpoint marking, the checks that make resume exact
- ``data``       ``PackedCollator`` (pads; labels -100 on padding, or the item's own labels),
                 ``Epochs`` (seeded passes over a fixed set), ``WithIndex``
- ``save``       the atomic save of an HF folder (or a peft adapter) with its resolved config
- ``compile``, ``attention``, ``metrics``: compiled blocks, the SDPA kernel, MFU and the curve
- ``run``        ``fit(...)``, and the process helpers a training module's ``main`` uses

How a second stage (e.g. LoRA) uses it, in its training module ``cama.<stage>.train``::

    from cama.train.data import Epochs, PackedCollator
    from cama.train.run import ModelInfo, fit, setup_rank_logging, exit_finished_process
    from cama.train.settings import from_dict

    settings = from_dict(section, key="lora")       # a TrainSettings from the stage's section
    info = ModelInfo.of(base)                       # parameters counted on the meta device
    info = dataclasses.replace(info, trainable=n_adapter_params)   # the stage choice counts these
    result = fit(
        key="lora",                                 # names keys in messages and the resolved config
        settings=settings, model_info=info,
        model=lambda: get_peft_model(AutoModelForCausalLM.from_pretrained(base), lora_config),
        data=lambda n: Epochs(train_set, n, seed=settings.seed),   # n = max_steps × global batch
        collator=PackedCollator(info.pad_id),       # items {"input_ids", "labels"}: -100 masks the prompt
        eval_data=val_set, eval_steps=50,           # validation loss every 50 steps (stats["eval_curve"])
        flops=lambda seq: 4 * info.params + ...,    # MFU: the stage's own FLOPs per token
        checkpoint_dir=..., out_dir=..., tokenizer_dir=..., config_name="lora_config.json",
        extra={"lora": {...}},                      # more of the resolved config, saved beside the weights
    )
    write_json(stats_path, {**result.stats, ...})    # the stage's own stats; result.log_history for plots

``fit`` reads the dataset in order, exactly ``max_steps`` × global batch items, so step k always
trains on the same items and a resume after ``kill -9`` repeats and skips nothing. The ZeRO
stage comes from ``settings.zero.stage`` (``auto``: 0 = DDP when the model states fit, else
2, else 3). A peft model is saved as its adapter. The training module is started by the
launcher: ``cama.train.launch.main(argv, module="cama.<stage>.train")``, and ends with
``exit_finished_process()``.

Nothing here imports torch at import time: ``cama --help`` stays fast.
"""

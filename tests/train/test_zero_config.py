"""The DeepSpeed dict from the config, and the choice of ZeRO stage."""

import dataclasses

from cama.train import settings as C
from cama.train.deepspeed import (
    choose_stage,
    ds_config,
    fit_zero3,
    resolve_optimizer,
    resolve_precision,
)


def test_stage3_dict():
    cfg = C.from_dict({"zero": {"stage": 3, "stage3_param_persistence_threshold": 10**10, "overlap_comm": False}})
    d = ds_config(cfg, stage=3, precision="bf16", optimizer="adamw_torch_fused", cuda=True)
    z = d["zero_optimization"]
    assert z["stage"] == 3 and z["stage3_gather_16bit_weights_on_model_save"] is True
    assert z["stage3_param_persistence_threshold"] == 10**10 and z["overlap_comm"] is False
    assert z["reduce_bucket_size"] == "auto" and z["stage3_prefetch_bucket_size"] == "auto"
    assert d["bf16"] == {"enabled": True} and d["fp16"]["enabled"] is False
    assert "optimizer" not in d  # the Trainer's fused torch AdamW
    assert d["train_micro_batch_size_per_gpu"] == "auto"


def test_stage2_with_optimizer_offload_fp16():
    cfg = C.from_dict({"zero": {"stage": 2, "offload_optimizer": "cpu", "allgather_bucket_size": 5 * 10**8}})
    opt = resolve_optimizer(cfg, cuda=True)
    d = ds_config(cfg, stage=2, precision="fp16", optimizer=opt, cuda=True)
    z = d["zero_optimization"]
    assert opt == "deepspeed" and d["optimizer"]["type"] == "AdamW"
    assert z["offload_optimizer"]["device"] == "cpu" and "offload_param" not in z
    assert z["allgather_bucket_size"] == 5 * 10**8 and "stage3_prefetch_bucket_size" not in z
    assert d["fp16"]["enabled"] and d["fp16"]["loss_scale"] == 0


def test_cpu_deepspeed_optimizer_is_torch_adam():
    cfg = C.from_dict({"optimizer": "deepspeed"})
    d = ds_config(cfg, stage=3, precision="fp32", optimizer="deepspeed", cuda=False)
    assert d["optimizer"]["params"]["torch_adam"] is True
    assert d["bf16"]["enabled"] is False


def test_stage_0_is_no_deepspeed():
    assert ds_config(C.from_dict(), stage=0, precision="bf16", optimizer="adamw_torch", cuda=True) is None


def test_choose_stage_by_what_fits():
    gb = 2**30
    assert choose_stage(1_100_000_000, 1, 80 * gb) == 0  # TinyLlama: 17.6 GB of states fits an H100
    assert choose_stage(7_000_000_000, 8, 80 * gb) == 2  # 7B: 112 GB whole, ~39 GB with ZeRO-2 over 8
    assert choose_stage(13_000_000_000, 8, 80 * gb) == 3
    assert choose_stage(10**6, 2, None) == 2


def test_precision_auto():
    assert resolve_precision("auto", cuda=False, bf16_supported=False) == "fp32"
    assert resolve_precision("auto", cuda=True, bf16_supported=True) == "bf16"
    assert resolve_precision("auto", cuda=True, bf16_supported=False) == "fp16"


def test_zero3_keeps_parameters_resident_only_where_they_fit():
    gb = 2**30
    z = C.from_dict({"zero": {"stage": 3}}).zero
    tiny = fit_zero3(z, 1_100_000_000, 2, 80 * gb)  # 2.2 GB whole + 7.7 GB partitioned states
    assert tiny.stage3_param_persistence_threshold >= 10**10 and tiny.stage3_max_live_parameters >= 10**10
    assert tiny.overlap_comm is False and tiny.reduce_bucket_size > 10**8
    big = fit_zero3(z, 13_000_000_000, 2, 80 * gb)  # 26 GB whole + 91 GB partitioned: does not fit
    assert big == z
    assert fit_zero3(z, 10**6, 2, None) == z  # CPU: DeepSpeed's defaults
    mine = C.from_dict({"zero": {"stage": 3, "stage3_param_persistence_threshold": 1000}}).zero
    assert fit_zero3(mine, 10**6, 2, 80 * gb) == mine  # the user's thresholds win
    offloaded = C.from_dict({"zero": {"stage": 3, "offload_param": "cpu"}}).zero
    assert fit_zero3(offloaded, 10**6, 2, 80 * gb) == offloaded
    d = ds_config(dataclasses.replace(C.from_dict(), zero=tiny), stage=3, precision="bf16", optimizer="adamw_torch_fused", cuda=True)
    assert d["zero_optimization"]["stage3_param_persistence_threshold"] == tiny.stage3_param_persistence_threshold



def test_compiled_zero3_uses_plain_linear():
    cfg = C.from_dict({"torch_compile": True})
    d = ds_config(cfg, stage=3, precision="bf16", optimizer="adamw_torch_fused", cuda=True)
    assert d["zero_optimization"]["memory_efficient_linear"] is False
    plain = ds_config(C.from_dict(), stage=3, precision="bf16", optimizer="adamw_torch_fused", cuda=True)
    assert "memory_efficient_linear" not in plain["zero_optimization"]  # DeepSpeed's default

"""Config errors name their key; derived batch sizes."""

import json

import pytest

from cama.errors import ConfigError
from cama.pretrain import config as C


def _fake_model(tmp_path, max_positions=256):
    d = tmp_path / "model"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"max_position_embeddings": max_positions}))
    return d


def _blend(tmp_path, max_length=128):
    p = tmp_path / "blend.json"
    p.write_text(json.dumps({"max_length": max_length, "sources": {}, "datasets": []}))
    return p


def test_missing_base_model_path_names_the_key(tmp_path):
    problems = C.check(C.TrainConfig(), base_model=tmp_path / "nope", blend=_blend(tmp_path), world_size=1)
    assert any(p.startswith("model.base:") and "does not exist" in p for p in problems)
    problems = C.check(C.TrainConfig(), base_model=None, blend=_blend(tmp_path), world_size=1)
    assert any(p.startswith("model.base:") for p in problems)


def test_base_model_without_config_json(tmp_path):
    (tmp_path / "empty").mkdir()
    problems = C.check(C.TrainConfig(), base_model=tmp_path / "empty", blend=None, world_size=1)
    assert any(p.startswith("model.base:") and "config.json" in p for p in problems)


def test_seq_length_longer_than_positions_names_the_key(tmp_path):
    cfg = C.TrainConfig(seq_length=512)
    problems = C.check(cfg, base_model=_fake_model(tmp_path, 256), blend=_blend(tmp_path), world_size=1)
    assert any(p.startswith("pretrain.seq_length: 512 exceeds") and "max_position_embeddings 256" in p for p in problems)


def test_blend_longer_than_positions_names_pack_max_length(tmp_path):
    problems = C.check(C.TrainConfig(), base_model=_fake_model(tmp_path, 64), blend=_blend(tmp_path, 128), world_size=1)
    assert any(p.startswith("pack.max_length") for p in problems)


def test_seq_length_shorter_than_samples(tmp_path):
    cfg = C.TrainConfig(seq_length=64)
    problems = C.check(cfg, base_model=_fake_model(tmp_path), blend=_blend(tmp_path, 128), world_size=1)
    assert any(p.startswith("pretrain.seq_length: 64 is shorter") for p in problems)


def test_batch_size_that_does_not_divide_names_the_key(tmp_path):
    cfg = C.TrainConfig(global_batch_size=10, micro_batch_size=4)
    problems = C.check(cfg, base_model=_fake_model(tmp_path), blend=_blend(tmp_path), world_size=2)
    assert any(p.startswith("pretrain.global_batch_size: 10 is not divisible") for p in problems)


def test_batch_sizes_derive_accumulation():
    assert C.batch_sizes(C.TrainConfig(global_batch_size=32, micro_batch_size=4), 2)[:2] == (4, 32)
    assert C.batch_sizes(C.TrainConfig(gradient_accumulation_steps=3, micro_batch_size=4), 2)[:2] == (3, 24)
    _, _, problems = C.batch_sizes(C.TrainConfig(global_batch_size=32, gradient_accumulation_steps=3), 2)
    assert problems and problems[0].startswith("pretrain.gradient_accumulation_steps")


def test_all_problems_reported_together(tmp_path):
    cfg = C.TrainConfig(seq_length=512, global_batch_size=10, save_total_limit=1)
    problems = C.check(cfg, base_model=_fake_model(tmp_path, 256), blend=_blend(tmp_path), world_size=4)
    keys = {p.split(":")[0] for p in problems}
    assert {"pretrain.seq_length", "pretrain.global_batch_size", "pretrain.save_total_limit"} <= keys


def test_unknown_keys_are_named():
    with pytest.raises(ConfigError) as e:
        C.from_dict({"max_stpes": 3, "zero": {"stage": 3, "bucket": 1}})
    assert "pretrain.max_stpes: unknown key" in str(e.value)
    assert "pretrain.zero.bucket: unknown key" in str(e.value)


def test_nested_section_becomes_a_dataclass():
    cfg = C.from_dict({"zero": {"stage": 2, "offload_optimizer": "cpu"}, "lr": 1e-4})
    assert isinstance(cfg.zero, C.ZeroConfig) and cfg.zero.stage == 2 and cfg.lr == 1e-4


def test_offload_param_needs_stage_3():
    problems = C.basic_problems(C.from_dict({"zero": {"stage": 2, "offload_param": "cpu"}}))
    assert any(p.startswith("pretrain.zero.offload_param") for p in problems)


def test_model_init_shape_checks():
    problems = C.check_model_init(C.ModelInit(hidden_size=100, heads=3, kv_heads=2))
    assert any(p.startswith("model.init.heads") for p in problems)
    assert any(p.startswith("model.init.kv_heads") for p in problems)

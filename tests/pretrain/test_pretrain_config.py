"""Settings errors name their key; derived batch sizes; length checks against the model."""

import pytest

from cama.errors import ConfigError
from cama.pretrain.config import check_model_init, model_init_from_dict
from cama.train import settings as C


def test_seq_length_longer_than_positions_names_the_key():
    problems = C.check_positions(C.from_dict({"seq_length": 512}), 128, 256)
    assert any(p.startswith("pretrain.seq_length: 512 exceeds") and "max_position_embeddings 256" in p for p in problems)


def test_samples_longer_than_positions_name_pack_max_length():
    problems = C.check_positions(C.from_dict(), 128, 64)
    assert any(p.startswith("pack.max_length") for p in problems)


def test_seq_length_shorter_than_samples():
    problems = C.check_positions(C.from_dict({"seq_length": 64}), 128, 256)
    assert any(p.startswith("pretrain.seq_length: 64 is shorter") for p in problems)


def test_batch_size_that_does_not_divide_names_the_key():
    _, _, problems = C.batch_sizes(C.from_dict({"global_batch_size": 10, "micro_batch_size": 4}), 2)
    assert any(p.startswith("pretrain.global_batch_size: 10 is not divisible") for p in problems)


def test_batch_sizes_derive_accumulation():
    assert C.batch_sizes(C.from_dict({"global_batch_size": 32, "micro_batch_size": 4}), 2)[:2] == (4, 32)
    assert C.batch_sizes(C.from_dict({"gradient_accumulation_steps": 3, "micro_batch_size": 4}), 2)[:2] == (3, 24)
    _, _, problems = C.batch_sizes(C.from_dict({"global_batch_size": 32, "gradient_accumulation_steps": 3}), 2)
    assert problems and problems[0].startswith("pretrain.gradient_accumulation_steps")


def test_every_settings_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as e:
        C.from_dict({"max_stpes": 3, "save_total_limit": 1, "zero": {"stage": 3, "bucket": 1}})
    text = str(e.value)
    assert "pretrain.max_stpes: unknown key" in text and "pretrain.zero.bucket: unknown key" in text
    assert "pretrain.save_total_limit: 1 is less than the minimum of 2" in text


def test_defaults_come_from_the_schema():
    from cama.config import schema_at

    cfg = C.from_dict({"lr": 1e-4})
    assert cfg.lr == 1e-4 and cfg.warmup_steps == schema_at("pretrain.warmup_steps")["default"] == 300
    assert cfg.zero.stage == schema_at("pretrain.zero.stage")["default"]


def test_nested_section_becomes_a_dataclass():
    cfg = C.from_dict({"zero": {"stage": 2, "offload_optimizer": "cpu"}, "lr": 1e-4})
    assert isinstance(cfg.zero, C.ZeroSettings) and cfg.zero.stage == 2 and cfg.lr == 1e-4


def test_offload_param_needs_stage_3():
    problems = C.basic_problems(C.from_dict({"zero": {"stage": 2, "offload_param": "cpu"}}))
    assert any(p.startswith("pretrain.zero.offload_param") for p in problems)


def test_model_init_shape_checks():
    problems = check_model_init(model_init_from_dict({"hidden_size": 100, "heads": 3, "kv_heads": 2}))
    assert any(p.startswith("model.init.heads") for p in problems)
    assert any(p.startswith("model.init.kv_heads") for p in problems)

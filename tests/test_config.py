"""The config schema: defaults are filled, and every mistake names its key."""

import copy
from pathlib import Path

import pytest
import yaml

from cama.config import load_config, validate_config
from cama.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "config" / "config.yaml"


@pytest.fixture
def demo():
    return yaml.safe_load(DEMO.read_text())


def test_demo_config_is_valid_and_gets_defaults(demo):
    config = validate_config(demo)
    assert config["sources"]["c4_en"]["format"] == "auto"  # default filled in
    assert config["download"]["retries"] == 5
    assert config["filter"]["pii"]["enabled"] is True


def test_unknown_top_level_key_is_named(demo):
    demo["sourcez"] = {}
    with pytest.raises(ConfigError, match=r"sourcez: unknown key"):
        validate_config(demo)


def test_unknown_nested_key_is_named_with_its_path(demo):
    demo["dedup"]["minhash"]["bandz"] = 3
    with pytest.raises(ConfigError, match=r"dedup\.minhash\.bandz: unknown key"):
        validate_config(demo)


def test_wrong_type_is_named_with_its_path(demo):
    demo["download"]["retries"] = "many"
    with pytest.raises(ConfigError, match=r"download\.retries: 'many' is not of type 'integer'"):
        validate_config(demo)


def test_bad_enum_in_a_source_names_the_source(demo):
    demo["sources"]["c4_en"]["lang"] = "fr"
    with pytest.raises(ConfigError, match=r"sources\.c4_en\.lang: 'fr' is not one of"):
        validate_config(demo)


def test_all_problems_are_reported_at_once(demo):
    demo["download"]["retries"] = -1
    demo["normalise"]["unicode_form"]["zh"] = "NFD"
    with pytest.raises(ConfigError) as err:
        validate_config(demo)
    assert len(err.value.problems) == 2
    assert "download.retries" in str(err.value) and "normalise.unicode_form.zh" in str(err.value)


def test_bands_times_rows_must_fit_num_perm(demo):
    demo["dedup"]["minhash"].update(num_perm=64, bands=20, rows=5)
    with pytest.raises(ConfigError, match=r"dedup\.minhash: bands × rows = 100 exceeds num_perm = 64"):
        validate_config(demo)


def test_load_config_names_the_file(tmp_path, demo):
    bad = copy.deepcopy(demo)
    bad["results"] = 3
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError, match=rf"{path}: results: 3 is not of type 'string'"):
        load_config(path)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")


def test_source_filter_overrides_merge_over_the_language_chain(demo):
    from cama.config import source_filter_settings

    config = validate_config(demo)
    tang = source_filter_settings(config, "tang_zh")["zh"]
    web = source_filter_settings(config, "cmrc2018_zh")["zh"]
    assert tang["chinesewebtext"]["min_chars"] == 20 and web["chinesewebtext"]["min_chars"] == 200
    # keys the override leaves alone keep the chain's value
    assert tang["chinesewebtext"]["min_cjk_ratio"] == web["chinesewebtext"]["min_cjk_ratio"]


def test_bad_source_filter_override_is_named_with_the_source(demo):
    demo["sources"]["tang_zh"]["filter"] = {"chinesewebtext": {"min_charz": 3}}
    with pytest.raises(ConfigError, match=r"sources\.tang_zh\.filter\.chinesewebtext\.min_charz: unknown key"):
        validate_config(demo)


def test_missing_base_model_is_named(demo, tmp_path):
    demo["model"]["base"] = str(tmp_path / "no-such-llama")
    with pytest.raises(ConfigError, match=r"model\.base: .*no-such-llama does not exist"):
        validate_config(demo)


def test_positions_shorter_than_samples_are_named(demo):
    demo["model"]["init"]["max_position_embeddings"] = 512
    with pytest.raises(ConfigError, match=r"model\.init\.max_position_embeddings: 512 is shorter than pack\.max_length = 1024"):
        validate_config(demo)


# ------------------------------------------------------------------ source kinds
def test_each_kind_gives_its_chain_and_layout(demo):
    from cama.config import source_filter_settings, source_layout_settings

    config = validate_config(demo)
    web = source_filter_settings(config, "c4_en")["en"]
    book = source_filter_settings(config, "gutenberg_en")["en"]
    assert web["c4_quality"]["enabled"] and not book["c4_quality"]["enabled"]
    assert web["gopher_quality"]["datatrove_compat"] and not book["gopher_quality"]["datatrove_compat"]
    assert book["boilerplate"]["enabled"] and not web["boilerplate"]["enabled"]
    assert source_layout_settings(config, "gutenberg_en") == {"unwrap": True, "gutenberg": True, "wiki": False}
    assert source_layout_settings(config, "cmrc2018_zh")["wiki"] is True
    # a source's own layout key wins over its kind's
    demo["sources"]["gutenberg_en"]["layout"] = {"unwrap": False}
    assert source_layout_settings(validate_config(demo), "gutenberg_en")["unwrap"] is False


def test_unknown_kind_is_named(demo):
    demo["sources"]["c4_en"]["kind"] = "blog"
    with pytest.raises(ConfigError, match=r"sources\.c4_en\.kind: 'blog' is not one of"):
        validate_config(demo)


def test_a_kind_without_a_chain_for_the_language_is_named(demo):
    demo["sources"]["humaneval_code"]["kind"] = "poetry"
    with pytest.raises(ConfigError, match=r"sources\.humaneval_code\.kind: kind 'poetry' has no chain for lang 'code'"):
        validate_config(demo)


def test_overriding_a_rule_the_kind_does_not_run_is_named(demo):
    demo["sources"]["gutenberg_en"]["filter"] = {"c4_quality": {"min_sentences": 3}}
    with pytest.raises(ConfigError, match=r"sources\.gutenberg_en\.filter\.c4_quality: kind 'book' does not run c4_quality"):
        validate_config(demo)
    # turning it back on is an explicit choice, and allowed
    demo["sources"]["gutenberg_en"]["filter"] = {"c4_quality": {"enabled": True, "min_sentences": 3}}
    from cama.config import source_filter_settings

    chain = source_filter_settings(validate_config(demo), "gutenberg_en")["en"]
    assert chain["c4_quality"]["enabled"] and chain["c4_quality"]["min_sentences"] == 3


def test_kind_presets_merge_and_a_bad_key_in_one_is_named(demo):
    from cama.config import source_filter_settings

    demo["filter"]["kinds"] = {"book": {"en": {"gopher_quality": {"min_words": 30}}}}
    chain = source_filter_settings(validate_config(demo), "gutenberg_en")["en"]
    assert chain["gopher_quality"]["min_words"] == 30
    assert chain["c4_quality"]["enabled"] is False  # the rest of the book preset stays
    demo["filter"]["kinds"] = {"wiki": {"zh": {"gopher_quality": {"min_wordz": 3}}}}
    with pytest.raises(ConfigError, match=r"filter\.kinds\.wiki\.zh\.gopher_quality\.min_wordz: unknown key"):
        validate_config(demo)

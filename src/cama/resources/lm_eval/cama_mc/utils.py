"""Data of the cama_mc task: the JSONL file beside this one (found from here, not from the cwd)."""

from pathlib import Path


def load(**kwargs):
    import datasets

    path = Path(__file__).with_name("cama_mc.jsonl")
    return datasets.DatasetDict({"test": datasets.load_dataset("json", data_files=str(path), split="train")})

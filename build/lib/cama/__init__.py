"""cama: an open, reproducible pipeline for a Chinese-English bilingual LLaMA.

One sub-package per stage, following the data:
corpus (download, read, normalise) -> clean (filter, dedup) -> pack -> pretrain -> ...
"""

__version__ = "0.1.0"

"""The publish stage's named failures. Each stops the command; none leaves output that looks complete.

They refine the policies of ``cama.errors``: a bad file we (or a download) produced is a
``FormatError``, a wrong input chosen by the user is a ``ConfigError``-like stop. Every message
names the file, the tensor and what to do.
"""

from __future__ import annotations

from cama.errors import CamaError, FormatError


class TruncatedFileError(FormatError):
    """A safetensors file is shorter than its own header says (an interrupted copy or download)."""


class ManifestMismatchError(FormatError):
    """A diff folder's files do not match its ``manifest.json`` (names, shapes, dtypes, sizes)."""


class DiffIntegrityError(FormatError):
    """A tensor's bytes do not hash to what the manifest recorded: a corrupt diff shard, or a
    recovered tensor that differs from the tuned one."""


class WrongBaseError(CamaError):
    """The base model is not the one the diff was made against (checked before any output)."""


class MissingFileError(CamaError):
    """A file the command needs is absent: a tokenizer, a config, a shard listed in an index."""


class ChecksumError(FormatError):
    """A downloaded or published file does not match its line in ``SHA256SUMS``."""


class HubError(CamaError):
    """The Hub refused or failed a request (no token, no such repo, a rejected commit)."""

"""The few ways cama fails, each a policy (after dolma's errors.py).

- ``ConfigError``: stop before any work. The message names every bad key.
- ``SourceError``: this source cannot be read at all (missing file, bad URL,
  checksum mismatch). The rule for that source fails; other sources go on.
- ``DownloadError``: a transient network failure. Retried with back-off, then
  raised as a ``SourceError``.
- ``RecordError``: one record is bad (malformed JSON, invalid UTF-8, too large).
  Never raised past a reader: the record is quarantined with the reason, and the
  run goes on. Counted in the stage's stats.
- ``FormatError``: a file we wrote, or an index, is not what its header says.
"""


class CamaError(Exception):
    """Base class: every error cama raises on purpose."""


class ConfigError(CamaError):
    """The config is invalid. Stop: nothing has been done yet."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("invalid config:\n  - " + "\n  - ".join(self.problems))


class SourceError(CamaError):
    """A source as a whole cannot be read. Fail this source, go on with others."""


class DownloadError(SourceError):
    """A network transfer failed; retried with back-off before it surfaces."""


class RecordError(CamaError):
    """One record is bad. Quarantine it with this reason and go on."""

    def __init__(self, reason: str, file: str = "", line: int | None = None):
        self.reason, self.file, self.line = reason, file, line
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {reason}" if where else reason)


class FormatError(CamaError):
    """A binary file or index does not match its declared format."""

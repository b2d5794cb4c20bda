"""Errors that the CLI turns into one clear line and exit code 2."""


class CleadError(Exception):
    """A user-facing error: bad input, missing data, a run that would be overwritten.

    The CLI prints ``error: <message>`` and exits with code 2; no traceback.
    """


class TrainingDiverged(CleadError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class RunInUse(CleadError):
    """Another process holds the run directory's lock (it is training or evaluating there); ``holder`` says
    which, as its lock file does."""

    def __init__(self, message: str, holder: str = "another process") -> None:
        super().__init__(message)
        self.holder = holder

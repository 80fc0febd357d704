"""User-facing errors: the CLI prints them as one clear line, never as a traceback."""


class TetherError(Exception):
    """An error caused by the user's input or settings (bad file, missing field, unknown name)."""


class DataError(TetherError):
    """Malformed data; the message names the file and, where there is one, the line."""

    def __init__(self, message: str, path=None, line: int | None = None):
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)
        self.path = path
        self.line = line


def skip_or_raise(error: DataError, skip_invalid: bool, skips) -> None:
    """A bad record's error: raised, or with ``skip_invalid`` counted in ``skips`` (a ``SkipLog`` or
    None) so that the caller drops the record and reads on."""
    if not skip_invalid:
        raise error
    if skips is not None:
        skips.add(str(error))

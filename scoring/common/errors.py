"""Errors that cross stage boundaries; each message is one line for the operator."""


class PipelineError(Exception):
    """A step could not complete; the message is one line for the operator."""


class GateFailed(PipelineError):
    """A hard gate failed: the run stops before scoring and nothing is published."""


class NotPublished(PipelineError):
    """The night ended without publishing because an earlier step failed (that step has said why)."""


# What an operator can do about a failure, by kind: only a transient one is worth retrying.
CONFIGURATION, DATA, CODE, TRANSIENT = "configuration", "data", "code", "transient"
# A database that answered and refused (wrong user, password, database name) is configured wrong;
# one that did not answer (refused, reset, timed out, too busy) may answer on the next try.
_REFUSED = (
    "authentication failed",
    "does not exist",
    "no pg_hba.conf entry",
    "permission denied",
    "invalid dsn",
    "invalid connection option",
)
_CONFIG_OS = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)


def _names(exc: BaseException) -> set[str]:
    return {c.__name__ for c in type(exc).__mro__}


def reason_code(exc: BaseException) -> str:
    """configuration, data, code or transient: the kind of a step's failure (duck-typed, so the
    database drivers need not be imported to tell)."""
    names = _names(exc)
    text = str(exc).lower()
    if isinstance(exc, PipelineError):
        return DATA
    if names & {"OperationalError", "InterfaceError", "DisconnectionError"}:
        return CONFIGURATION if any(t in text for t in _REFUSED) else TRANSIENT
    if names & {"ArgumentError", "NoSuchModuleError"}:  # a database URL that cannot be used
        return CONFIGURATION
    if isinstance(exc, _CONFIG_OS):
        return CONFIGURATION
    if isinstance(exc, (OSError, TimeoutError, ConnectionError)):  # disk, network
        return TRANSIENT
    if isinstance(exc, ValueError) and type(exc).__module__ in ("builtins", __name__):
        return DATA  # a bad value in a parameter or a file
    return CODE


def one_line(exc: BaseException) -> str:
    """The failure as one line: its kind, and the message (a code error names its type too)."""
    code = reason_code(exc)
    first = (str(exc).strip().splitlines() or [""])[0]
    text = f"{type(exc).__name__}: {first}" if code in (CODE, TRANSIENT) else first
    return f"{code}: {text}"[:500]

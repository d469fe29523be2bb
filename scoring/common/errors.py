"""Errors that cross stage boundaries; each message is one line for the operator."""


class PipelineError(Exception):
    """A step could not complete; the message is one line for the operator."""


class GateFailed(PipelineError):
    """A hard gate failed: the run stops before scoring and nothing is published."""

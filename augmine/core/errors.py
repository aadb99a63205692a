"""The one error type augmine raises for bad input.

An :class:`AugmineError` carries a single line meant for a person: which file, which
place in it, what is wrong and what to do. The CLI prints it as ``Error: ...`` with no
traceback; library users can catch it like any exception.
"""


class AugmineError(Exception):
    """Bad user input (dataset, recipe, config, run folder): a one-line, actionable message."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))

"""The "did you mean" hint of every unknown-name error (keys, classes, recipes, transforms)."""

from __future__ import annotations

from difflib import get_close_matches
from typing import Iterable


def did_you_mean(word, choices: Iterable[str], n: int = 1, cutoff: float = 0.6,
                 quote: bool = True, sep: str = ", ") -> str:
    """``"did you mean 'a', 'b'?"`` naming up to ``n`` of ``choices`` close to ``word``
    (difflib's ratio >= ``cutoff``, closest first); ``""`` when none is close, so a caller
    writes ``did_you_mean(...) or fallback``. ``quote``: each name as its ``repr``;
    ``sep``: between names (e.g. ``" or "``)."""
    close = get_close_matches(str(word), list(choices), n=n, cutoff=cutoff)
    if not close:
        return ""
    return f"did you mean {sep.join(repr(c) if quote else str(c) for c in close)}?"

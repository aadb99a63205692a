"""The app's pages: their titles and the ``?page=`` values that open them."""

from __future__ import annotations

from typing import Sequence

# the pages in sidebar order
PAGES = ("Augmentation browser", "Confusion explorer", "Rounds", "Recipe comparison", "Affinity")
PAGE_SLUGS = {"Augmentation browser": "browser", "Confusion explorer": "confusion",
              "Rounds": "rounds", "Recipe comparison": "comparison", "Affinity": "affinity"}


def page_slug(page: str) -> str:
    """The ``?page=`` value of a page title (:data:`PAGE_SLUGS`, else its lower case)."""
    return PAGE_SLUGS.get(page, page.lower().replace(" ", "-"))


def page_from_query(value: str | None, pages: Sequence[str]) -> str | None:
    """The page a ``?page=`` value names (its slug or title, any case, ``-``/``_`` for
    spaces), or None."""
    if not value:
        return None
    want = " ".join(str(value).replace("-", " ").replace("_", " ").lower().split())
    for page in pages:
        if want in (page.lower(), page_slug(page).replace("-", " ")):
            return page
    return None

"""Progress bars for the long steps: checking a folder of photos (02) and computing features (04).

A bar appears only when the work is long (``minimum`` items or more), so short runs, the ``ci``
profile and the tests stay quiet. ``tqdm.auto`` draws a widget in Jupyter and a text bar on a
terminal; the bar disappears when the work is done (``leave=False``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def bar(
    items: Iterable[T], total: int | None, description: str, *, minimum: int, unit: str = "it"
) -> Iterable[T]:
    """Returns ``items`` wrapped in a progress bar when ``total`` >= ``minimum``, else ``items``.

    Introduced in 02 (the folder check) and 04 (the features pass). ``total`` None (unknown
    length) means no bar.
    """
    if total is None or total < minimum:
        return items
    from tqdm.auto import tqdm

    return _closing(tqdm(items, total=total, desc=description, unit=unit, leave=False))


def _closing(progress) -> Iterator:
    try:
        yield from progress
    finally:
        progress.close()

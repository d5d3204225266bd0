"""Progress bars for the long steps: checking a folder of photos (02), computing features (04)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def bar(
    items: Iterable[T], total: int | None, description: str, *, minimum: int, unit: str = "it"
) -> Iterable[T]:
    """Returns ``items`` wrapped in a progress bar (``tqdm.auto``, gone when done) when ``total``
    is known and at least ``minimum``, so short runs and tests stay quiet; else ``items``."""
    if total is None or total < minimum:
        return items
    from tqdm.auto import tqdm

    return _closing(tqdm(items, total=total, desc=description, unit=unit, leave=False))


def _closing(progress) -> Iterator:
    try:
        yield from progress
    finally:
        progress.close()

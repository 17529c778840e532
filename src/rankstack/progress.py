"""Progress bars: one rule for every `progress` argument in rankstack."""

from __future__ import annotations

from typing import Any, Iterable

from tqdm.auto import tqdm


def progress_bar(progress: bool | None, iterable: Iterable | None = None, **options: Any) -> tqdm:
    """A tqdm bar over `iterable` (`options` as tqdm's): shown when `progress` is True, hidden when False, and for
    None shown only where the output is a terminal."""
    return tqdm(iterable, disable=None if progress is None else not progress, **options)

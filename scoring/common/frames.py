"""Small frame helpers shared by the stages."""

from __future__ import annotations

import pandas as pd


def concat_frames(frames: list[pd.DataFrame], columns: list[str] | None = None) -> pd.DataFrame:
    """Concatenate the non-empty frames; an empty frame with `columns` when there are none."""
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=columns or [])
    return pd.concat(frames, ignore_index=True)

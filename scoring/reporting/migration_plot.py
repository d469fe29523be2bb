"""The tier migration matrix as a picture (for the policy diff page and the run report)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scoring.common.plots import use_cjk_font

TIERS = ("A", "B", "C", "D")


def plot_matrix(diff: dict, path: Path) -> None:
    import matplotlib  # lazy: only the reports draw, and matplotlib is slow to import

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    use_cjk_font()
    m = np.array([[diff["matrix"][a][b] for b in TIERS] for a in TIERS])
    fig, ax = plt.subplots(figsize=(5.2, 4.4), dpi=110)
    ax.imshow(np.log1p(m), cmap="Blues")
    for i in range(4):
        for j in range(4):
            share = m[i, j] / max(1, m.sum())
            ax.text(
                j,
                i,
                f"{m[i, j]:,}\n{share:.1%}",
                ha="center",
                va="center",
                fontsize=9,
                color="white" if np.log1p(m[i, j]) > np.log1p(m.max()) * 0.6 else "black",
            )
    ax.set_xticks(range(4), [f"{t}" for t in TIERS])
    ax.set_yticks(range(4), [f"{t}" for t in TIERS])
    ax.set_xlabel(f"new: {diff['new']['file']} ({diff['new']['label']})")
    ax.set_ylabel(f"old: {diff['old']['file']} ({diff['old']['label']})")
    ax.set_title(
        f"tier migration as of {diff['as_of']} ({diff['entities']:,} entities)", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)

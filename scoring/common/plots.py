"""Plot fonts: Chinese labels render on any machine (Noto Sans CJK SC from the mplfonts wheel)."""

from __future__ import annotations

from pathlib import Path


def use_cjk_font() -> str | None:
    """Register the Noto Sans CJK SC font shipped by the mplfonts package so plot labels in Chinese
    render on any machine; returns the family name (None if the font is unavailable)."""
    import matplotlib  # lazy: only the reports draw, and matplotlib is slow to import
    from matplotlib import font_manager

    try:
        import mplfonts
    except ImportError:
        return None
    path = Path(mplfonts.__file__).parent / "fonts" / "NotoSansCJKsc-Regular.otf"
    if not path.exists():
        return None
    font_manager.fontManager.addfont(str(path))
    name = font_manager.FontProperties(fname=str(path)).get_name()
    matplotlib.rcParams["font.family"] = [name, "DejaVu Sans"]
    matplotlib.rcParams["axes.unicode_minus"] = False
    return name

"""What a figure module returns, and the matplotlib plumbing every figure shares.

Figures are drawn on bare :class:`matplotlib.figure.Figure` objects with the Agg canvas: no pyplot
state machine, no GUI backend, nothing global that two reports in one process could share.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure as MplFigure

    from harness.report.outside import Outside
    from harness.report.reader import Reader

#: colours: pretrained nets in the tab10 cycle, random-init controls in grey (the same grey everywhere)
RANDOM_COLOUR = "#9a9a9a"
CI_LEVEL = "95 %"


@dataclass
class Plot:
    """One image of a figure (e.g. one dataset's panel row)."""

    label: str
    figure: MplFigure

    def png(self, dpi: int = 110) -> bytes:
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(self.figure)
        buf = io.BytesIO()
        self.figure.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
        return buf.getvalue()


@dataclass
class Section:
    """A numbered figure: its plots, caption, the data plotted and the SQL behind it.

    ``note`` is set (and ``plots`` empty) when the database holds nothing to draw: the report then
    prints the note instead of an empty or invented figure.
    """

    key: str
    title: str
    caption: str = ""
    plots: list[Plot] = field(default_factory=list)
    #: the exact values drawn, by name (unit tests compare them with the SQL views)
    data: dict[str, pd.DataFrame] = field(default_factory=dict)
    sql: list[str] = field(default_factory=list)
    note: str | None = None
    #: data read outside the database (dataset loader, token cache): said in the caption too
    outside: list[str] = field(default_factory=list)


@dataclass
class Context:
    reader: Reader
    #: brain data and tokens the database does not hold; None = database only
    outside: Outside | None = None


def new_figure(width: float, height: float) -> MplFigure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def omitted(key: str, title: str, why: str) -> Section:
    return Section(key=key, title=title, note=why)


def span(values: pd.Series) -> str:
    """``"12"`` or ``"10–14"``: an n that may differ between rows, for captions."""
    v = pd.to_numeric(values, errors="coerce").dropna()
    if v.empty:
        return "?"
    lo, hi = int(v.min()), int(v.max())
    return str(lo) if lo == hi else f"{lo}–{hi}"

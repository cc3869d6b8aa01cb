"""The command line's consoles, with rich markup switched off.

Everything the CLI prints carries user text: database paths, registry names, dataset layout
descriptions (``<root>[/<subject>]/…``), error messages, SQL results. With markup on, rich reads any
``[...]`` in them as a style tag and dies with ``MarkupError`` on ``[/x]`` (or silently swallows
``[bold]``). So both consoles print text literally, table cells and titles included, and the few
deliberate colours go through :func:`styled` (a ``Text`` with a style, never parsed).
Progress bars parse their column templates separately: build them with :func:`text_column`.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import TextColumn
from rich.text import Text

console = Console(width=max(160, Console().width), markup=False)
err_console = Console(stderr=True, markup=False)


def styled(style: str, text: str, rest: str = "") -> Text:
    """``text`` in ``style`` followed by ``rest`` unstyled; neither is read as markup."""
    return Text.assemble((text, style), rest)


def text_column(template: str) -> TextColumn:
    """A progress column whose rendered fields (task descriptions hold entry names) stay literal."""
    return TextColumn(template, markup=False)

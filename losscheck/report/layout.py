"""Tables that fit the width they are rendered at, without splitting a word or dropping a column.

`FitTable` decides at render time (rich calls `__rich_console__` with the available width):
1. every column gets at least its longest word (its longest line for `wrap=False` columns) and the
   space left is shared in proportion to what each column still lacks, so text wraps only at spaces;
2. when even the narrowest layout is too wide, the columns are split into several tables that each
   repeat the first `key` columns (a row stays identifiable in each part);
3. when one key column plus one other column does not fit either, each row becomes a block of
   `header  value` lines.
A word longer than the whole width is the only thing ever folded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich import box as rich_box
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, JustifyMethod, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

#: spaces between two columns (one padding cell and the box's blank divider)
GAP = 2


@dataclass
class Col:
    """One column: its header, alignment, and whether its cells may wrap at spaces."""

    header: str
    justify: JustifyMethod = "left"
    wrap: bool = True
    style: str | None = None
    #: a wrapping column narrower than this (or than its longest line, if shorter) reads badly: the
    #: table is split or stacked instead
    comfort: int = 0


def _text(cell: object) -> Text:
    return cell.copy() if isinstance(cell, Text) else Text("" if cell is None else str(cell))


def _longest_word(text: str) -> int:
    return max((cell_len(w) for w in text.split()), default=0)


def _longest_line(text: str) -> int:
    return max((cell_len(line) for line in text.splitlines()), default=0)


def share_out(mins: list[int], maxs: list[int], room: int) -> list[int]:
    """Widths from `mins` plus `room` more cells, shared in proportion to max - min (never above max)."""
    widths = list(mins)
    need = [mx - mn for mn, mx in zip(mins, maxs, strict=True)]
    while room > 0 and any(n > 0 for n in need):
        total = sum(n for n in need if n > 0)
        given = 0
        for i, n in enumerate(need):
            if n > 0:
                step = min(n, max(1, room * n // total))
                step = min(step, room - given)
                widths[i] += step
                need[i] -= step
                given += step
                if given >= room:
                    break
        room -= given
        if given == 0:
            break
    return widths


class FitTable:
    """A table of `cols` and `rows` (str or rich Text cells) laid out to fit; see the module doc.

    key: how many leading columns identify a row (repeated when the table is split).
    expand: give the width left over to the last wrapping column (e.g. a description).
    lines: a rule between rows."""

    def __init__(self, title: str | None, cols: Sequence[Col], rows: Sequence[Sequence[object]], *,
                 key: int = 1, expand: bool = False, lines: bool = False, caption: str | None = None,
                 heavy: bool = False) -> None:
        self.title, self.cols, self.key = title, list(cols), key
        self.rows = [[_text(c) for c in row] for row in rows]
        self.expand, self.lines, self.caption, self.heavy = expand, lines, caption, heavy

    # -- measuring ------------------------------------------------------------------------------
    def _bounds(self, i: int) -> tuple[int, int]:
        col = self.cols[i]
        cells = [r[i].plain for r in self.rows]
        head_min = _longest_word(col.header)
        widest = max([_longest_line(c) for c in cells] + [cell_len(col.header)])
        content_min = max((_longest_word(c) if col.wrap else _longest_line(c) for c in cells), default=0)
        return max(head_min, content_min, min(col.comfort, widest), 1), max(widest, 1)

    @staticmethod
    def _span(widths: Sequence[int]) -> int:
        return sum(widths) + GAP * (len(widths) - 1)

    def _groups(self, width: int, bounds: list[tuple[int, int]]) -> list[list[int]] | None:
        """Column indices per table: all in one when they fit, else key columns + as many as fit."""
        n = len(self.cols)
        if self._span([b[0] for b in bounds]) <= width:
            return [list(range(n))]
        key = list(range(min(self.key, n - 1)))
        if not key:
            return None
        groups: list[list[int]] = []
        current = list(key)
        for i in range(len(key), n):
            trial = current + [i]
            if self._span([bounds[j][0] for j in trial]) <= width:
                current = trial
            elif len(current) > len(key):
                groups.append(current)
                current = key + [i]
                if self._span([bounds[j][0] for j in current]) > width:
                    return None
            else:
                return None
        groups.append(current)
        return self._balance(groups, bounds, len(key))

    def _balance(self, groups: list[list[int]], bounds: list[tuple[int, int]], nkey: int) -> list[list[int]]:
        """Greedy filling leaves the last part narrow: move trailing columns to the next part while
        that part stays no wider than the one giving them up."""
        def span(g: list[int]) -> int:
            return self._span([bounds[j][0] for j in g])

        for g in range(len(groups) - 2, -1, -1):
            while len(groups[g]) > nkey + 1:
                moved = groups[g + 1][:nkey] + [groups[g][-1]] + groups[g + 1][nkey:]
                if span(moved) > span(groups[g]):
                    break
                groups[g + 1] = moved
                groups[g] = groups[g][:-1]
        return groups

    # -- rendering ------------------------------------------------------------------------------
    def _table(self, idx: list[int], width: int, bounds: list[tuple[int, int]]) -> Table:
        mins = [bounds[i][0] for i in idx]
        maxs = [bounds[i][1] for i in idx]
        heads = [min(max(mn, cell_len(self.cols[i].header)), mx) for i, mn, mx in zip(idx, mins, maxs, strict=True)]
        if self._span(heads) <= width:  # whole headers first: they are short
            mins = heads
        widths = share_out(mins, maxs, width - self._span(mins))
        flex = [i for i, c in enumerate(self.cols) if c.wrap][-1:] if self.expand else []
        if flex and flex[0] in idx:
            widths[idx.index(flex[0])] += width - self._span(widths)
        t = Table(box=rich_box.SIMPLE_HEAVY if self.heavy else rich_box.SIMPLE, show_edge=False,
                  pad_edge=False, padding=(0, 1, 0, 0), show_lines=self.lines,
                  caption=self.caption if idx[-1] == len(self.cols) - 1 else None, caption_justify="left",
                  collapse_padding=False)
        for k, i in enumerate(idx):
            col = self.cols[i]
            t.add_column(col.header, justify=col.justify, width=widths[k], no_wrap=False, overflow="fold",
                         style=col.style)
        for row in self.rows:
            t.add_row(*[row[i] for i in idx])
        return t

    def _stacked(self, width: int) -> RenderResult:
        if self.title:
            yield Text(self.title, style="italic")
        label_w = min(max(cell_len(c.header) for c in self.cols), max(12, width // 5), max(width // 2, 1))
        value_w = max(width - label_w - GAP, 1)
        for n, row in enumerate(self.rows):
            grid = Table.grid(padding=(0, GAP, 0, 0))
            grid.add_column(width=label_w, overflow="fold", style="dim")
            grid.add_column(width=value_w, overflow="fold")
            for k, (col, cell) in enumerate(zip(self.cols, row, strict=True)):
                if cell.plain.strip() or k >= self.key:  # a blank key cell continues the row above
                    grid.add_row(Text(col.header), cell)
            if n or self.title:
                yield Text("")
            yield grid
        if self.caption:
            yield Text(self.caption)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        bounds = [self._bounds(i) for i in range(len(self.cols))]
        groups = self._groups(width, bounds)
        if groups is None:
            yield from self._stacked(width)
        else:
            for g, idx in enumerate(groups):
                if g:
                    yield Text("")
                if self.title:
                    yield Text(self.title if g == 0 else f"{self.title} (continued)", style="italic")
                yield self._table(idx, width, bounds)
        yield Text("")

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(1, options.max_width)

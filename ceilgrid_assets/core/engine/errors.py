"""Input errors: one line naming file, room, field and cell.

Apart from :mod:`.io` so that the command line reports them without importing
numpy (``ceilgrid --help`` and argument errors start in a tenth of a second).
"""

from __future__ import annotations

from typing import Any


class InputError(ValueError):
    """A problem with the input, reported on one line without a traceback."""

    def __init__(
        self,
        reason: str,
        *,
        source: str = "<input>",
        room: str | None = None,
        field_name: str | None = None,
        cell: tuple[int, int] | None = None,
    ) -> None:
        self.reason = reason
        self.source = source
        self.room = room
        self.field_name = field_name
        self.cell = cell
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = [one_line(self.source)]
        if self.room is not None:
            parts.append(f"room {one_line(self.room)}")
        if self.field_name is not None:
            parts.append(f"field '{self.field_name}'")
        if self.cell is not None:
            parts.append(f"cell ({self.cell[0]}, {self.cell[1]})")
        return ": ".join(parts) + ": " + " ".join(self.reason.split())

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "room": self.room,
            "field": self.field_name,
            "cell": list(self.cell) if self.cell is not None else None,
            "reason": self.reason,
            "message": str(self),
        }


class MissingFileError(InputError):
    """The file is not there (any more): a reader scanning a folder may simply skip it."""


def one_line(text: str) -> str:
    """``text`` with line breaks and other control characters escaped, so messages stay one line."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)

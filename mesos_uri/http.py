"""HTTP/1.x values and the sans-I/O decoder of curl's ``-i --raw`` output.

(The decoder functions are being written; the value classes below are the fixed interface.)
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs

__all__ = ["Headers", "Response"]


@attrs.frozen
class Headers:
    """Header fields in arrival order; names compare case-insensitively (RFC 9110 §5.1)."""

    fields: tuple[tuple[str, str], ...] = ()

    def get(self, name: str) -> str | None:
        """The last value of ``name``: a repeated header keeps its last value (SPEC.md §4.3)."""
        wanted = name.lower()
        found: str | None = None
        for key, value in self.fields:
            if key.lower() == wanted:
                found = value
        return found

    def get_all(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self.fields if key.lower() == wanted]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields)


@attrs.frozen
class Response:
    """One decoded response; ``status`` is ``"<code> <reason>"`` as the original prints it."""

    code: int
    status: str
    headers: Headers = Headers()
    body: bytes = b""

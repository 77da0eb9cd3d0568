"""The one error a malformed EDI document raises."""

from __future__ import annotations


class EdiError(ValueError):
    """A document that cannot be read.

    `reason` says what is wrong, `position` is the 1-based segment position in the interchange
    (None when the file has no segments at all), `segment` the segment tag found there. `context`
    carries what was already known when the error happened (sender, group and message control
    numbers), so that a rejection acknowledgement can name what it rejects.
    """

    def __init__(
        self,
        reason: str,
        *,
        position: int | None = None,
        segment: str | None = None,
        code: str = "",
        context: dict[str, str] | None = None,
    ) -> None:
        where = ""
        if position is not None:
            where = f" (segment {position}" + (f" {segment}" if segment else "") + ")"
        super().__init__(reason + where)
        self.reason = reason
        self.position = position
        self.segment = segment
        self.code = code
        self.context = dict(context or {})

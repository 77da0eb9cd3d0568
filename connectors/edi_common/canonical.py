"""From a parsed EDI document to canonical messages, the same way for X12 and EDIFACT."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from pydantic import ValidationError

from connectors.edi_common.errors import EdiError
from schemas.base import CanonicalMessage
from schemas.envelope import Envelope, content_id, message_id

M = TypeVar("M", bound=CanonicalMessage)


def build(cls: type[M], error: Callable[[str], EdiError], **data: Any) -> M:
    """Validate into a canonical model; a value the model refuses becomes an `EdiError` at the
    segment that carried it (`error` makes one for that segment)."""
    try:
        return cls(**data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise error(f"{cls.__name__}.{loc}: {err['msg']}") from None


def envelope(
    *, source: str, doc_type: str, content: str, index: int, data: CanonicalMessage, at: datetime
) -> Envelope:
    """The id comes from the document's content, not its control numbers: a partner resending
    the same document in a new envelope produces the same ids, which the core then ignores."""
    return Envelope(
        id=message_id(source, doc_type, content_id(content), str(index)),
        source=source,
        data=data,
        time=at,
    )

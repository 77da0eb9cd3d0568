"""The EDIFACT exchange directory: `Exchange` from edi_common with the EDIFACT codec."""

from __future__ import annotations

from pathlib import Path

from connectors.edi_common.control import ControlNumbers
from connectors.edi_common.exchange import Exchange
from connectors.edifact.codec import EdifactCodec, EdifactPartner


def edifact_exchange(
    root: Path | str, partner: EdifactPartner, *, settle_seconds: float = 2.0
) -> Exchange:
    """Exchange folders under `root`; control references persist in `root/control-numbers.json`."""
    numbers = ControlNumbers(Path(root) / "control-numbers.json", limit=99_999_999_999_999)
    return Exchange(root, EdifactCodec(partner, numbers), settle_seconds=settle_seconds)

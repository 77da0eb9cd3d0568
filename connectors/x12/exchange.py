"""The X12 exchange directory: `Exchange` from edi_common with the X12 codec."""

from __future__ import annotations

from pathlib import Path

from connectors.edi_common.control import ControlNumbers
from connectors.edi_common.exchange import Exchange
from connectors.x12.codec import X12Codec, X12Partner


def x12_exchange(root: Path | str, partner: X12Partner, *, settle_seconds: float = 2.0) -> Exchange:
    """Exchange folders under `root`; control numbers persist in `root/control-numbers.json`."""
    numbers = ControlNumbers(Path(root) / "control-numbers.json")
    return Exchange(root, X12Codec(partner, numbers), settle_seconds=settle_seconds)

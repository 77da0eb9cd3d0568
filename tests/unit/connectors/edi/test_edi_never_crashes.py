"""Whatever bytes land in the inbox, the parsers answer with messages or an `EdiError`, never
another exception (which would leave the file in the inbox forever)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.edi_common import ControlNumbers, EdiError
from connectors.edifact import EdifactCodec, EdifactPartner
from connectors.edifact import Party as EdifactParty
from connectors.x12 import Party, X12Codec, X12Partner

NOW = datetime(2026, 11, 22, 4, 2, tzinfo=UTC)


def _numbers() -> ControlNumbers:
    state: dict[str, int] = {}
    return ControlNumbers(load=lambda: dict(state), save=state.update)


X12 = X12Codec(
    X12Partner("acme-supply", Party("ZZ", "STOCKHUB"), Party("ZZ", "ACMESUPPLY")),
    _numbers(),
    clock=lambda: NOW,
)
EDIFACT = EdifactCodec(
    EdifactPartner("euro-parts", EdifactParty("STOCKHUB"), EdifactParty("EUROPARTS")),
    _numbers(),
    clock=lambda: NOW,
)

X12_DOCS = [
    "ISA*00*          *00*          *ZZ*ACMESUPPLY     *ZZ*STOCKHUB       *261122*0930*U*00401"
    "*000000417*0*P*>~\nGS*PR*ACMESUPPLY*STOCKHUB*20261122*0930*417*X*004010~\nST*855*0001~\n"
    "BAK*00*AC*PO-1*20261122****ACK-1~\nPO1*1*120*EA*12.50*PE*SK*TEE-RED-M~\n"
    "ACK*IQ*96*EA*068*20261203~\nCTT*1~\nSE*6*0001~\nGE*1*417~\nIEA*1*000000417~\n",
    "ISA*00*          *00*          *ZZ*ACMESUPPLY     *ZZ*STOCKHUB       *261122*0930*U*00401"
    "*000000418*0*P*>~\nGS*IN*ACMESUPPLY*STOCKHUB*20261122*0930*418*X*004010~\nST*810*0001~\n"
    "BIG*20261128*INV-1**PO-1~\nIT1*1*60*EA*13.10*PE*SK*TEE-RED-M~\nTDS*78600~\nTXI*ST*1.5~\n"
    "SAC*C*D240***1990~\nSE*7*0001~\nGE*1*418~\nIEA*1*000000418~\n",
    "ISA*00*          *00*          *ZZ*ACMESUPPLY     *ZZ*STOCKHUB       *261122*0930*U*00401"
    "*000000419*0*P*>~\nGS*SH*ACMESUPPLY*STOCKHUB*20261122*0930*419*X*004010~\nST*856*0001~\n"
    "BSN*00*ASN-1*20261124*1015*0001~\nHL*1**S~\nDTM*017*20261127~\nHL*2*1*O~\nPRF*PO-1~\n"
    "HL*3*2*I~\nLIN*1*SK*TEE-RED-M~\nSN1**60*EA~\nSE*10*0001~\nGE*1*419~\nIEA*1*000000419~\n",
    "ISA*00*          *00*          *ZZ*ACMESUPPLY     *ZZ*STOCKHUB       *261122*0930*U*00401"
    "*000000420*0*P*>~\nGS*IB*ACMESUPPLY*STOCKHUB*20261122*0930*420*X*004010~\nST*846*0001~\n"
    "BIA*00*MM*F-1*20261122*0600~\nLIN**SK*TEE-RED-M~\nQTY*33*340*EA~\nSE*5*0001~\nGE*1*420~\n"
    "IEA*1*000000420~\n",
]
EDIFACT_DOCS = [
    "UNA:+.? '\nUNB+UNOC:3+EUROPARTS:ZZ+STOCKHUB:ZZ+261123:0930+7001'\nUNH+1+ORDRSP:D:96A:UN'\n"
    "BGM+231+RSP-1+4'\nDTM+137:20261123:102'\nRFF+ON:PO-1'\nLIN+1+3+BOLT?+M8:IN'\nQTY+21:500'\n"
    "QTY+113:400'\nDTM+69:20261208:102'\nPRI+AAA:0.085'\nUNS+S'\nUNT+11+1'\nUNZ+1+7001'\n",
    "UNB+UNOC:3+EUROPARTS:ZZ+STOCKHUB:ZZ+261123:0930+7002'\nUNH+1+INVOIC:D:96A:UN'\n"
    "BGM+380+RE-1+9'\nDTM+137:20261127:102'\nRFF+ON:PO-1'\nCUX+2:EUR:4'\nLIN+1++BOLT:IN'\n"
    "QTY+47:250'\nMOA+203:23.75'\nPRI+AAA:0.095'\nUNS+S'\nMOA+79:23.75'\nMOA+77:28.26'\n"
    "UNT+13+1'\nUNZ+1+7002'\n",
    "UNB+UNOC:3+EUROPARTS:ZZ+STOCKHUB:ZZ+261123:0930+7003'\nUNH+1+DESADV:D:96A:UN'\n"
    "BGM+351+DN-1+9'\nDTM+11:202611241400:203'\nRFF+ON:PO-1'\nLIN+1++BOLT:IN'\nQTY+12:250'\n"
    "RFF+LI:1'\nUNT+8+1'\nUNZ+1+7003'\n",
]


@pytest.mark.parametrize("doc", X12_DOCS)
def test_x12_fixtures_are_valid(doc: str) -> None:
    assert X12.parse(doc.encode()).envelopes


@pytest.mark.parametrize("doc", EDIFACT_DOCS)
def test_edifact_fixtures_are_valid(doc: str) -> None:
    assert EDIFACT.parse(doc.encode()).envelopes


def _mutate(draw: st.DrawFn, doc: str, alphabet: str) -> bytes:
    text = doc
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, min(len(text), i + 12)))
        insert = draw(st.text(alphabet=alphabet, max_size=6))
        text = text[:i] + insert + text[j:]
    data = text.encode()
    if draw(st.booleans()) and data:
        k = draw(st.integers(0, len(data) - 1))
        data = data[:k] + bytes([draw(st.integers(0, 255))]) + data[k + 1 :]
    return data


@st.composite
def mutated_x12(draw: st.DrawFn) -> bytes:
    return _mutate(draw, draw(st.sampled_from(X12_DOCS)), "*~>0123456789ABZ.-\n ")


@st.composite
def mutated_edifact(draw: st.DrawFn) -> bytes:
    return _mutate(draw, draw(st.sampled_from(EDIFACT_DOCS)), "+:'?.0123456789ABZ\n ")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_x12())
def test_x12_parser_answers_every_input_with_messages_or_an_edi_error(data: bytes) -> None:
    try:
        X12.parse(data)
    except EdiError as exc:
        assert exc.reason
        X12.reject(data, exc)  # and a rejection can always be attempted


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_edifact())
def test_edifact_parser_answers_every_input_with_messages_or_an_edi_error(data: bytes) -> None:
    try:
        EDIFACT.parse(data)
    except EdiError as exc:
        assert exc.reason
        EDIFACT.reject(data, exc)

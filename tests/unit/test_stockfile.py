import pytest

from hub.stockfile import StockFileError, count_envelopes, parse


def test_valid_file_becomes_one_count_per_line():
    cid, envs = count_envelopes("sku,location,quantity\nA,main,5\nB,,0\n")
    assert [(e.data.sku, e.data.location, e.data.quantity) for e in envs] == [  # type: ignore[attr-defined]
        ("A", "main", 5),
        ("B", "main", 0),
    ]
    assert cid.startswith("count-")


def test_same_file_same_day_gives_same_message_ids():
    a = count_envelopes("sku,location,quantity\nA,main,5\n")[1]
    b = count_envelopes("sku,location,quantity\nA,main,5\n")[1]
    assert [e.id for e in a] == [e.id for e in b]


def test_every_bad_line_is_named_by_number_and_nothing_is_returned():
    text = "sku,location,quantity\nA,main,5\nB,main,x\nC,main,-1\nD,main\nA,main,3\n"
    with pytest.raises(StockFileError) as info:
        parse(text)
    problems = info.value.problems
    assert any(p.startswith("line 3:") and "not a whole number" in p for p in problems)
    assert any(p.startswith("line 4:") and "negative" in p for p in problems)
    assert any(p.startswith("line 5:") and "expected 3 fields" in p for p in problems)
    assert any(p.startswith("line 6:") and "already counted on line 2" in p for p in problems)


def test_wrong_header_is_line_1():
    with pytest.raises(StockFileError, match="line 1: header"):
        parse("item,qty\nA,1\n")


def test_invalid_sku_is_reported_with_its_line():
    with pytest.raises(StockFileError, match="line 2: sku"):
        parse("sku,location,quantity\n\x01bad,main,1\n")


def test_a_line_corrected_under_the_same_count_id_is_a_new_message():
    """Sent again, a line counts once; corrected (5 → 50) under the same id, it counts again."""
    first = count_envelopes("sku,location,quantity\nA,main,5\nB,main,1\n", "count-7")[1]
    fixed = count_envelopes("sku,location,quantity\nA,main,50\nB,main,1\n", "count-7")[1]
    assert first[0].id != fixed[0].id and first[1].id == fixed[1].id


def test_the_counting_time_is_the_one_given():
    from datetime import UTC, datetime

    at = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)
    [env] = count_envelopes("sku,location,quantity\nA,main,5\n", "count-8", at)[1]
    assert env.data.counted_at == at  # type: ignore[attr-defined]


def test_a_sku_of_dots_alone_is_refused_with_its_line():
    """A shop's stock URL would read ".." as a directory; dots inside a SKU are fine."""
    with pytest.raises(StockFileError) as info:
        parse("sku,location,quantity\nA.1,main,1\n..,main,2\n . ,main,3\n")
    assert [p[:7] for p in info.value.problems] == ["line 3:", "line 4:"]
    assert "only dots" in info.value.problems[0]

import datetime as dt

import pytest

from b3_dagster.errors import B3FormatError
from b3_dagster.sources.b3_format import clean_text, parse_date, parse_decimal, parse_integer


@pytest.mark.parametrize(
    ("text", "language", "expected"),
    [
        ("2,946", "pt-br", 2.946),
        ("100,000", "pt-br", 100.0),
        ("18.553.794,87445950", "pt-br", 18553794.8744595),
        ("0,051", "pt-br", 0.051),
        ("2.663", "en-us", 2.663),
        ("16,036,751.16744128", "en-us", 16036751.16744128),
        (" 3,161 ", "pt-br", 3.161),
    ],
)
def test_parse_decimal(text, language, expected):
    assert parse_decimal(text, language) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("text", "language", "expected"),
    [("1.480.371.347", "pt-br", 1480371347), ("734.632.205", "pt-br", 734632205), ("99,015,750,716", "en-us", 99015750716),
     ("466", "pt-br", 466)],
)
def test_parse_integer(text, language, expected):
    assert parse_integer(text, language) == expected


@pytest.mark.parametrize(
    ("text", "language"),
    [("1,480,371,347", "pt-br"), ("2.94.6", "pt-br"), ("abc", "pt-br"), ("", "pt-br"), ("1.480.371.347", "en-us"),
     ("12,5", "pt-br"), (None, "pt-br"), ("1.00", "xx-yy")],
)
def test_parse_integer_rejects_what_is_not_a_whole_number_in_that_language(text, language):
    with pytest.raises(B3FormatError):
        parse_integer(text, language)


@pytest.mark.parametrize("text", ["2.946,1,2", "1..2", "1,2,3", "--1", "1 000", "0.522", "012.345"])
def test_parse_decimal_rejects_malformed_pt_br(text):
    with pytest.raises(B3FormatError):
        parse_decimal(text, "pt-br")


@pytest.mark.parametrize(
    ("text", "language", "expected"),
    [("08/12/22", "pt-br", dt.date(2022, 12, 8)), ("04/07/25", "en-us", dt.date(2025, 4, 7)),
     ("04/07/25", "pt-br", dt.date(2025, 7, 4))],
)
def test_parse_date_follows_the_language(text, language, expected):
    assert parse_date(text, language) == expected


@pytest.mark.parametrize("text", ["2022-12-08", "31/02/22", "", "13/13/13", None])
def test_parse_date_rejects_malformed(text):
    with pytest.raises(B3FormatError):
        parse_date(text, "pt-br")


def test_clean_text_keeps_inner_padding_of_type():
    assert clean_text("  ON      NM  ") == "ON      NM"

"""B3's text formats: pt-BR (or en-US) numbers and two-digit-year dates, parsed strictly."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from typing import Any, Callable

from b3_dagster.errors import B3FormatError

LANGUAGES = ("pt-br", "en-us")

# Digits grouped by thousands (or not grouped at all), with an optional decimal part.
_NUMBER_PATTERNS = {
    # a grouped number cannot start with a zero group: "0.522" is not 522 in pt-br, it is malformed
    "pt-br": re.compile(r"^-?([1-9]\d{0,2}(\.\d{3})+|\d+)(,\d+)?$"),
    "en-us": re.compile(r"^-?([1-9]\d{0,2}(,\d{3})+|\d+)(\.\d+)?$"),
}
_SEPARATORS = {"pt-br": (".", ","), "en-us": (",", ".")}  # (thousands, decimal)
_DATE_FORMATS = {"pt-br": "%d/%m/%y", "en-us": "%m/%d/%y"}


def _check_language(language: str) -> None:
    if language not in LANGUAGES:
        raise B3FormatError(f"unsupported language {language!r}; expected one of {LANGUAGES}")


def _checked_number(text: str, language: str, kind: str) -> str:
    """The stripped text if it is a well-formed number in ``language``; B3FormatError otherwise."""
    _check_language(language)
    value = text.strip() if isinstance(text, str) else text
    if not isinstance(value, str) or not _NUMBER_PATTERNS[language].match(value):
        raise B3FormatError(f"{text!r} is not a {language} {kind}")
    return value


def parse_decimal(text: str, language: str = "pt-br") -> float:
    """``"2,946"`` -> 2.946 and ``"18.553.794,87445950"`` -> 18553794.8744595 (pt-br)."""
    value = _checked_number(text, language, "number")
    thousands, decimal = _SEPARATORS[language]
    return float(value.replace(thousands, "").replace(decimal, "."))


def parse_integer(text: str, language: str = "pt-br") -> int:
    """``"1.480.371.347"`` -> 1480371347 (pt-br). A decimal part is an error: quantities are whole shares."""
    value = _checked_number(text, language, "integer")
    thousands, decimal = _SEPARATORS[language]
    if decimal in value:
        raise B3FormatError(f"{text!r} has a decimal part where a whole number is expected")
    return int(value.replace(thousands, ""))


def parse_date(text: str, language: str = "pt-br") -> dt.date:
    """``"08/12/22"`` -> 2022-12-08 (pt-br, dd/mm/yy); en-us answers are mm/dd/yy."""
    _check_language(language)
    if not isinstance(text, str):
        raise B3FormatError(f"{text!r} is not a date")
    try:
        return dt.datetime.strptime(text.strip(), _DATE_FORMATS[language]).date()
    except ValueError as error:
        raise B3FormatError(f"{text!r} is not a {language} date ({_DATE_FORMATS[language]})") from error


def clean_text(text: str) -> str:
    """Strip the padding B3 puts around fixed-width fields (``"ON      NM  "`` -> ``"ON      NM"``).

    Inner spaces are kept: in ``type`` they separate share class, corporate-event marker and listing level.
    """
    return text.strip()


def int_or_none(value: Any) -> int | None:
    """A paging figure of B3's JSON answers (``page.totalRecords``, ...): an int, or None when absent or not one."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def parse_json_body(body: bytes | str, fail: Callable[[str], Exception]) -> Any:
    """The JSON document of a B3 answer, or ``fail(reason)`` raised (the source's own error, naming the page)."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        snippet = body[:80] if isinstance(body, (bytes, str)) else b""
        raise fail(f"the body is not valid JSON (truncated, or an error page?): {error}; starts with "
                   f"{snippet!r}") from error


def encode_payload(payload: dict[str, Any]) -> str:
    """B3's JSON APIs take the request as base64 of its JSON, in the URL path."""
    return base64.b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode()


def decode_payload(token: str) -> dict[str, Any]:
    """The inverse of ``encode_payload``: a request URL's last segment (for the replay servers and tests)."""
    return json.loads(base64.b64decode(token))

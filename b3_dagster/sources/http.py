"""One HTTP GET shape for every source: deadlines, a size cap, and retries with backoff on network errors, 429, 5xx.

Why not urllib3's ``Retry`` and requests' ``timeout`` alone: ``timeout`` bounds each socket read, so a server that
drips one byte a second is never cut off, and ``Retry`` obeys ``Retry-After`` for up to 6 hours per retry. Here
every fetch has a **deadline** (all pages and retries of one fetch share it, see ``Deadline``) and every request a
**request timeout** (connect, headers and the whole body); a ``Retry-After`` longer than what is left of the
deadline ends the fetch at once instead of sleeping past it. Bodies are streamed and refused past ``max_bytes``.

Three error types, each saying what ended the fetch: ``FetchDeadlineExceeded``, ``BodyTooLarge`` and
``NetworkError`` (nothing answered: DNS failure, connection refused or reset, no answer in time). An HTTP status is
not an error here: the caller turns a final non-200 answer into its own message.

``post_message`` is the project's one POST (an alert to a webhook), here so that ``rules/`` stays free of I/O.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlsplit

import requests
import urllib3
from urllib3.util.retry import Retry

from b3_dagster.errors import AlertDeliveryError, BodyTooLarge, FetchDeadlineExceeded, HttpFetchError, NetworkError

RETRY_STATUSES = (429, 500, 502, 503, 504)
USER_AGENT = "b3-dagster/0.1 (+https://github.com/; data pipeline)"
CHUNK_BYTES = 64 * 1024
MEBIBYTE = 1024 * 1024


@dataclass(frozen=True)
class HttpPolicy:
    """How one source fetches: every figure is a setting of the source's Dagster resource."""

    request_timeout: float = 30.0  # seconds for one request: connect, headers and the whole body
    fetch_deadline: float = 120.0  # seconds for one whole fetch: every page and every retry
    retries: int = 4  # after the first attempt, on network errors, timeouts, 429 and 5xx
    backoff: float = 0.5  # seconds before retry n: backoff * 2**(n-1) (or Retry-After, when the server sends it)
    max_bytes: int = 8 * MEBIBYTE  # largest body accepted

    def __post_init__(self) -> None:
        if self.request_timeout <= 0 or self.fetch_deadline <= 0 or self.max_bytes <= 0:
            raise ValueError(f"timeouts, deadline and size cap must be positive: {self}")
        if self.retries < 0 or self.backoff < 0:
            raise ValueError(f"retries and backoff cannot be negative: {self}")


class Deadline:
    """The end of one whole fetch (started when created)."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic):
        self.seconds = seconds
        self._clock = clock
        self._end = clock() + seconds

    def remaining(self) -> float:
        return self._end - self._clock()


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: bytes
    url: str
    attempts: int
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def http_session() -> requests.Session:
    """A plain session (connection reuse, our User-Agent); retries are ``get``'s, not urllib3's."""
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    session.headers["Accept"] = "application/json"
    return session


# Not in b3_dagster/errors.py on purpose: a private signal between this module's functions (caught here, then retried or
# turned into FetchDeadlineExceeded), never raised to a caller.
class _RequestExpired(Exception):
    """One request ran past its own time limit."""


def _describe(error: BaseException) -> str:
    """The innermost reason of a requests/urllib3 error, short (no URL, which the caller shows apart)."""
    reason = error
    for _ in range(5):
        inner = getattr(reason, "reason", None) or (reason.args[0] if getattr(reason, "args", None) else None)
        if isinstance(inner, BaseException) and inner is not reason:
            reason = inner
        else:
            break
    text = str(reason)
    if "Name or service not known" in text or "Temporary failure in name resolution" in text or \
            "nodename nor servname" in text or "NameResolutionError" in type(reason).__name__:
        return "the host name does not resolve (DNS)"
    if "Connection refused" in text or isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    return text.split(": ", 1)[-1] if "object at 0x" in text else text


def _read_body(response: requests.Response, *, url: str, attempts: int, max_bytes: int, ends_at: float) -> bytes:
    """The body, decoded, read chunk by chunk: stops at the request's time limit or past ``max_bytes``."""
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise BodyTooLarge(f"the answer announces {int(declared):,} bytes, more than the cap of {max_bytes:,} bytes",
                           url=url, attempts=attempts)
    chunks: list[bytes] = []
    size = 0
    raw = response.raw
    while True:
        if time.monotonic() > ends_at:
            raise _RequestExpired(f"the body was still arriving ({size:,} bytes so far)")
        # read1: returns what one socket read gives, so a dripping server cannot hold us past ``ends_at``
        chunk = raw.read1(CHUNK_BYTES, decode_content=True)
        if not chunk:
            break
        size += len(chunk)
        if size > max_bytes:
            raise BodyTooLarge(f"the answer is larger than the cap of {max_bytes:,} bytes; stopped reading",
                               url=url, attempts=attempts)
        chunks.append(chunk)
    return b"".join(chunks)


def _headers_within(send: Callable[[], requests.Response], seconds: float) -> requests.Response:
    """``send()`` (which returns once the headers are in) within ``seconds``: a server that drips its status line or
    headers is given up on. The worker thread is left to end on its own socket timeout."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["response"] = send()
        except BaseException as error:  # noqa: BLE001 (re-raised in the caller's thread)
            box["error"] = error

    worker = threading.Thread(target=run, name="http-headers", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise _RequestExpired("the status line and headers did not arrive in time")
    if "error" in box:
        raise box["error"]
    return box["response"]


def _retry_wait(response_headers: dict[str, str] | None, policy: HttpPolicy, retry_number: int) -> tuple[float, str]:
    """Seconds to wait before retry ``retry_number`` (1-based), and why."""
    value = (response_headers or {}).get("Retry-After")
    if value:
        try:
            return float(Retry().parse_retry_after(value)), f"the server's Retry-After: {value}"
        except urllib3.exceptions.InvalidHeader:
            pass
    return policy.backoff * 2 ** (retry_number - 1), "the backoff"


def get(session: requests.Session, url: str, policy: HttpPolicy, deadline: Deadline | None = None) -> HttpAnswer:
    """GET ``url`` under ``policy``, sharing ``deadline`` with the rest of the fetch (a new one if not given).

    Returns the final answer whatever its status (after retries on 429/5xx). Raises ``NetworkError``,
    ``FetchDeadlineExceeded`` or ``BodyTooLarge``.
    """
    deadline = deadline or Deadline(policy.fetch_deadline)
    attempts = 0

    def expired(what: str) -> FetchDeadlineExceeded:
        return FetchDeadlineExceeded(
            f"the fetch deadline of {deadline.seconds:g} s ended it after {attempts} request(s): {what}",
            url=url, attempts=attempts)

    while True:
        remaining = deadline.remaining()
        if remaining <= 0:
            raise expired("no time left")
        attempts += 1
        answer, reason, status_headers = _attempt(session, url, policy, deadline, attempts,
                                                  min(policy.request_timeout, remaining), expired)
        if answer is not None:
            return answer
        wait, why = _retry_wait(status_headers, policy, attempts)
        if wait >= deadline.remaining():
            raise expired(f"{reason}; {why} asks to wait {wait:g} s, more than the "
                          f"{max(deadline.remaining(), 0):.3g} s left")
        time.sleep(wait)


def _attempt(session: requests.Session, url: str, policy: HttpPolicy, deadline: Deadline, attempts: int,
             limit: float, expired) -> tuple[HttpAnswer | None, str, dict[str, str] | None]:
    """One request within ``limit`` seconds: the final answer, or (None, why it may be retried, the headers of a
    retryable status). Raises when no retry is left or the deadline ended it."""
    ends_at = time.monotonic() + limit
    try:
        response = _headers_within(lambda: session.get(url, timeout=(limit, limit), stream=True), limit)
        try:
            body = _read_body(response, url=url, attempts=attempts, max_bytes=policy.max_bytes, ends_at=ends_at)
        finally:
            response.close()
        if response.status_code not in RETRY_STATUSES or attempts > policy.retries:
            return HttpAnswer(response.status_code, body, url, attempts, dict(response.headers)), "", None
        return None, f"HTTP {response.status_code}", dict(response.headers)
    except (_RequestExpired, requests.Timeout, urllib3.exceptions.TimeoutError) as error:
        detail = f" ({error})" if isinstance(error, _RequestExpired) else ""
        reason = f"request {attempts} got no complete answer within {limit:.3g} s{detail}"
        if limit < policy.request_timeout or deadline.remaining() <= 0:
            raise expired(reason) from None
        if attempts > policy.retries:
            raise FetchDeadlineExceeded(
                f"the request timeout of {policy.request_timeout:g} s ended each of {attempts} attempt(s): "
                f"{reason}", url=url, attempts=attempts) from None
        return None, reason, None
    except (requests.ConnectionError, urllib3.exceptions.ProtocolError, OSError) as error:
        reason = _describe(error)
        if attempts > policy.retries:
            raise NetworkError(f"{urlsplit(url).netloc} could not be reached: {reason} "
                               f"({_attempts_text(attempts)})", url=url, attempts=attempts,
                               cause=error) from None
        return None, reason, None


def _attempts_text(attempts: int) -> str:
    return "1 attempt, no retries configured" if attempts == 1 else f"{attempts} attempts: 1 + {attempts - 1} retries"


def get_ok(session: requests.Session, url: str, policy: HttpPolicy, fail: Callable[[str], Exception],
           deadline: Deadline | None = None) -> HttpAnswer:
    """``get``, for a source with one error type: a 200 answer, or ``fail(reason)`` raised, the reason saying
    whether nothing answered (network, deadline, size cap) or what HTTP status came back after how many attempts."""
    try:
        answer = get(session, url, policy, deadline)
    except HttpFetchError as error:
        raise fail(str(error)) from error
    if answer.status != 200:
        raise fail(f"HTTP {answer.status} after {answer.attempts} attempt(s): {answer.text[:200]!r}")
    return answer


# The one POST: an alert to a Slack-compatible webhook (the rules build the message; sending it is I/O, so it is here).
def post_message(url: str, payload: dict, timeout: float = 10.0,
                 session: requests.Session | None = None) -> None:
    """POST ``payload`` as JSON to the webhook; ``AlertDeliveryError`` unless it answers 2xx."""
    try:
        answer = (session or requests).post(url, json=payload, timeout=timeout)
    except requests.RequestException as error:
        raise AlertDeliveryError(f"alert webhook unreachable: {error}") from error
    if not 200 <= answer.status_code < 300:
        raise AlertDeliveryError(f"alert webhook answered {answer.status_code}: {answer.text[:200]}")

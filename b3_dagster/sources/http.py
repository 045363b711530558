"""One HTTP session shape for every source: timeouts, retries with backoff on connection errors, 429 and 5xx."""

from __future__ import annotations

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

RETRY_STATUSES = (429, 500, 502, 503, 504)
USER_AGENT = "b3-dagster/0.1 (+https://github.com/; data pipeline)"


def retrying_session(retries: int = 4, backoff_factor: float = 0.5) -> requests.Session:
    """A ``requests.Session`` that retries idempotent GETs.

    urllib3 waits ``backoff_factor * 2**(n-1)`` seconds before retry n, and honours ``Retry-After`` on 429/503.
    """
    retry = Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        backoff_factor=backoff_factor,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET"}),
        respect_retry_after_header=True,
        raise_on_status=False,  # the caller turns the final status into a clear error
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    session.headers["Accept"] = "application/json"
    return session

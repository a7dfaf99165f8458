"""How findling's HTTP servers run (the API of `findling serve`, MCP over streamable HTTP).

Both run on uvicorn with the same limits for slow and oversized clients, and log the same way
in every worker process. Imported only when serving: it imports uvicorn and h11.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import h11
from uvicorn.config import LOGGING_CONFIG
from uvicorn.protocols.http.h11_impl import H11Protocol

HEAD_TIMEOUT_SECONDS = 10.0  # from connecting, or from the last response, to a complete head
KEEP_ALIVE_SECONDS = 5  # an idle keep-alive connection is closed after this
MAX_HEAD_BYTES = 16 * 1024  # request line and headers arriving in pieces (the app checks whole)
MAX_CONNECTIONS = 128  # open connections and running requests; past that 503
SHUTDOWN_SECONDS = 30  # in-flight requests finish on SIGTERM

# uvicorn's own configuration, plus one JSON access-log line per request on stderr (the
# config is applied in every worker process, so `--workers N` logs too)
LOG_CONFIG: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
LOG_CONFIG["formatters"]["line"] = {"format": "%(message)s"}
LOG_CONFIG["handlers"]["line"] = {
    "class": "logging.StreamHandler",
    "formatter": "line",
    "stream": "ext://sys.stderr",
}
LOG_CONFIG["loggers"]["findling.access"] = {
    "handlers": ["line"],
    "level": "INFO",
    "propagate": False,
}


def uvicorn_options() -> dict[str, Any]:
    """The options both servers pass to uvicorn.run, besides app, host, port and workers."""
    return {
        "http": "indexer.serving:HeadTimeoutProtocol",  # by name: worker processes import it
        "h11_max_incomplete_event_size": MAX_HEAD_BYTES,
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        "limit_concurrency": MAX_CONNECTIONS,
        "timeout_graceful_shutdown": SHUTDOWN_SECONDS,
        "log_config": LOG_CONFIG,
        "access_log": False,  # our access log is structured; uvicorn's would double it
    }


class HeadTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request head is not complete within
    HEAD_TIMEOUT_SECONDS. uvicorn only times out connections idle between requests, so a
    client sending a head a byte at a time (slowloris) would otherwise hold one forever."""

    head_timeout = HEAD_TIMEOUT_SECONDS
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._wait_for_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the head has arrived
            self._stop_waiting()
        elif self._head_timer is None:  # a new request begins (after a body that ended late)
            self._wait_for_head()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self._wait_for_head()  # the next request on this connection

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        super().connection_lost(exc)

    def _wait_for_head(self) -> None:
        self._stop_waiting()
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _stop_waiting(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()

"""Direct lines between the driver of ``findling serve --ray`` and its shard replicas.

Ray places, restarts and addresses the replicas; the questions and answers of a search travel
over TCP connections the driver holds to each replica (``multiprocessing.connection``: framed
messages, and its HMAC challenge both ways with a key each server makes at start). An actor call
goes from the driver's core worker through the replica's core worker and back, and a round of
them cost 2.2-2.4 ms to 3 replicas on this 2-core machine for a 15 KB message each way; the same
round over these lines 0.3-0.4 ms (tight loop, one run each, alternated).
"""

from __future__ import annotations

import logging
import pickle
import secrets
import socket
import struct
import threading
from collections.abc import Callable
from multiprocessing import AuthenticationError
from multiprocessing.connection import (
    Connection,
    answer_challenge,
    deliver_challenge,
)
from typing import Any

log = logging.getLogger(__name__)

Address = tuple[str, int]
START_SECONDS = 120.0  # replicas have this long to start (a node may be busy)
DIAL_SECONDS = 5  # to connect and pass the challenges; a node that is gone sends no reset
LINE_ERRORS = (OSError, EOFError, AuthenticationError)  # the other end is gone or a stranger


def new_key() -> bytes:
    """A server's key: its replicas accept lines only from who holds it."""
    return secrets.token_bytes(32)


def packed(value: Any) -> bytes:
    """A message between driver and replica: both ends are findling's own processes, which
    alone hold the key of the line it travels on."""
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def unpacked(buffer: bytes) -> Any:
    return pickle.loads(buffer)  # from our own driver or replica (see packed)


def _receive_timeout(connection: Connection, seconds: int) -> None:
    """Reads of ``connection`` fail after ``seconds`` without data (0: they wait for ever)."""
    # at the socket, not with settimeout: Connection reads the descriptor with os.read, which a
    # Python-level timeout (a non-blocking descriptor) would break
    with socket.fromfd(connection.fileno(), socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", seconds, 0))


def _tuned(sock: socket.socket) -> Connection:
    """``sock`` as a Connection whose handshake may not hang (see _receive_timeout)."""
    sock.setblocking(True)
    # a message over 16 KB leaves in two writes, and Nagle's algorithm would hold the second
    # back until the first is acknowledged
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    connection = Connection(sock.detach())
    _receive_timeout(connection, DIAL_SECONDS)
    return connection


def dial(address: Address, key: bytes) -> Connection:
    """A line to the switchboard at ``address``, both ends proven to hold ``key``."""
    connection = _tuned(socket.create_connection(address, timeout=DIAL_SECONDS))
    try:
        answer_challenge(connection, key)
        deliver_challenge(connection, key)
    except BaseException:
        connection.close()
        raise
    _receive_timeout(connection, 0)  # from here, a round's own deadline applies
    return connection


def _portable(exc: Exception) -> Exception:
    """``exc`` if it survives the trip to the driver, else a RuntimeError saying what it was."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # an exception class whose arguments do not round-trip
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


class Switchboard:
    """A replica's end: accepts the driver's lines on ``host`` and answers every message
    ``(method, args)`` with ``("ok", answer(method, args))`` or ``("error", exception)``."""

    def __init__(self, host: str, key: bytes, answer: Callable[[str, tuple[Any, ...]], Any]):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET  # a node's address is either
        self._listener = socket.create_server((host, 0), family=family)
        self.address: Address = self._listener.getsockname()[:2]
        self._key = key
        self._answer = answer
        self._closed = False
        threading.Thread(target=self._accept, name="findling-switchboard", daemon=True).start()

    def close(self) -> None:
        """Take no more lines (those open end with their driver)."""
        self._closed = True
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                if not self._closed:
                    log.exception("the replica's line listener failed")
                return
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        # the challenge here, not in accept, and timed: a stranger holds one thread, briefly
        with _tuned(sock) as connection:
            try:
                deliver_challenge(connection, self._key)
                answer_challenge(connection, self._key)
            except LINE_ERRORS:
                return
            _receive_timeout(connection, 0)  # the driver asks when it has a question
            while True:
                try:
                    method, args = unpacked(connection.recv_bytes())
                except (OSError, EOFError):  # the driver closed the line
                    return
                try:
                    reply = ("ok", self._answer(method, args))
                except Exception as exc:  # the shard's own error: the driver raises it
                    reply = ("error", _portable(exc))
                try:
                    connection.send_bytes(packed(reply))
                except OSError:
                    return


class Line:
    """The driver's end of one replica: where it listens, and connections not in use."""

    def __init__(self, ray: Any, handle: Any, key: bytes) -> None:
        self.ray = ray
        self.handle = handle
        self._key = key
        self._address: Address | None = None
        self._asked: Any = None  # the replica's address on its way from Ray
        self._ever_reached = False
        self._idle: list[Connection] = []
        # connections are of the replica's current start or of one before: only a current one
        # that fails says the replica is gone
        self._start = 0
        self._started_of: dict[Connection, int] = {}
        self._lock = threading.Lock()

    def reached(self, address: Address) -> None:
        """The replica listens at ``address`` (its answer to ``address()``)."""
        with self._lock:
            self._address = address
            self._asked = None
            self._ever_reached = True

    def connection(self) -> Connection | None:
        """A connection to the replica for one message and its answer; None while the
        replica is out (it died and Ray is restarting it)."""
        with self._lock:
            if self._idle:
                return self._idle.pop()
            address = self._address or self._learn()
            start = self._start
        if address is None:
            return None
        try:
            connection = dial(address, self._key)
        except LINE_ERRORS:
            self._forget(start)
            return None
        with self._lock:
            self._started_of[connection] = start
        return connection

    def _learn(self) -> Address | None:
        """The replica's address: at first when it has started, then (it was lost) if Ray has
        its restarted one by now (asked once; never waits)."""
        from ray.exceptions import RayActorError

        if self._asked is None:
            self._asked = self.handle.address.remote()
        ready, _ = self.ray.wait([self._asked], timeout=0 if self._ever_reached else START_SECONDS)
        self._ever_reached = True
        if not ready:
            return None
        self._asked = None
        try:
            self._address = self.ray.get(ready[0])
        except RayActorError:  # died again meanwhile: ask again next time
            return None
        return self._address

    def done(self, connection: Connection) -> None:
        """``connection`` answered and may carry the next message."""
        with self._lock:
            if self._started_of.get(connection) == self._start:
                self._idle.append(connection)
                return
        self.close(connection)

    def close(self, connection: Connection) -> None:
        """``connection`` is of no more use (its round gave up on it, or its replica is gone)."""
        with self._lock:
            self._started_of.pop(connection, None)
        connection.close()

    def lost(self, connection: Connection) -> None:
        """``connection`` broke: if it was to the replica's current start, the replica is
        gone, its other connections close, and its next address comes from Ray."""
        with self._lock:
            start = self._started_of.get(connection)
        self.close(connection)
        if start is not None:
            self._forget(start)

    def _forget(self, start: int) -> None:
        with self._lock:
            if start != self._start:  # forgotten already, and maybe learnt again
                return
            self._start += 1
            self._address = None
            idle, self._idle = self._idle, []
        for stale in idle:
            self.close(stale)

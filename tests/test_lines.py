"""The replicas' switchboard (indexer.distributed.lines) without Ray: who may talk to it, what
comes back, and that one line's trouble stays on that line. The driver's end against a live
cluster, with replicas killed under load, is in tests/test_ray.py."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection
from typing import Any

import pytest

from indexer.distributed import lines
from indexer.distributed.lines import LINE_ERRORS, Switchboard, dial, new_key, packed, unpacked
from indexer.errors import IndexCorruptError


class Unportable(Exception):
    def __init__(self, a: str, b: str) -> None:  # pickle calls it with one argument
        super().__init__(f"{a} {b}")


def answer(method: str, args: tuple[Any, ...]) -> Any:
    if method == "echo":
        return args
    if method == "damaged":
        raise IndexCorruptError("segment 3 is damaged", "rebuild the shard")
    if method == "odd":
        raise Unportable("two", "arguments")
    if method == "wait":
        threading.Event().wait(args[0])
        return "late"
    raise ValueError(method)


@pytest.fixture
def board() -> Iterator[tuple[Switchboard, bytes]]:
    key = new_key()
    switchboard = Switchboard("127.0.0.1", key, answer)
    yield switchboard, key
    switchboard.close()


def ask(connection: Connection, method: str, *args: Any) -> tuple[str, Any]:
    connection.send_bytes(packed((method, args)))
    status, value = unpacked(connection.recv_bytes())
    return status, value


def test_answers_come_back_on_the_line_they_were_asked_on(board: tuple[Switchboard, bytes]) -> None:
    switchboard, key = board
    first, second = (Client(switchboard.address, authkey=key) for _ in range(2))
    for n in range(3):
        assert ask(first, "echo", n, "a") == ("ok", (n, "a"))
        assert ask(second, "echo", {"n": n}) == ("ok", ({"n": n},))


def test_a_shard_error_comes_back_as_itself(board: tuple[Switchboard, bytes]) -> None:
    switchboard, key = board
    line = Client(switchboard.address, authkey=key)
    status, error = ask(line, "damaged")
    assert status == "error" and isinstance(error, IndexCorruptError)
    assert (error.message, error.hint) == ("segment 3 is damaged", "rebuild the shard")
    status, error = ask(line, "odd")  # does not survive pickling: said as a RuntimeError
    assert status == "error" and isinstance(error, RuntimeError)
    assert str(error) == "Unportable: two arguments"
    assert ask(line, "echo", 1) == ("ok", (1,))  # the line goes on


def test_a_line_without_the_key_is_refused(board: tuple[Switchboard, bytes]) -> None:
    switchboard, key = board
    with pytest.raises(AuthenticationError):
        Client(switchboard.address, authkey=new_key())
    assert ask(Client(switchboard.address, authkey=key), "echo", 2) == ("ok", (2,))


def test_a_stranger_who_never_answers_the_challenge_holds_up_nobody(
    board: tuple[Switchboard, bytes],
) -> None:
    switchboard, key = board
    answered: list[tuple[str, Any]] = []
    with socket.create_connection(switchboard.address) as stranger:
        stranger.recv(1)  # the challenge arrives; no answer goes back
        # in a thread: were the challenge in the accepting thread, this would wait for ever
        friend = threading.Thread(
            target=lambda: answered.append(
                ask(Client(switchboard.address, authkey=key), "echo", 3)
            ),
            daemon=True,
        )
        friend.start()
        friend.join(timeout=10)
    assert answered == [("ok", (3,))]


def test_a_slow_answer_holds_up_only_its_own_line(board: tuple[Switchboard, bytes]) -> None:
    switchboard, key = board
    slow, quick = (Client(switchboard.address, authkey=key) for _ in range(2))
    slow.send_bytes(packed(("wait", (0.5,))))
    assert ask(quick, "echo", 4) == ("ok", (4,))
    assert not slow.poll(0)
    assert unpacked(slow.recv_bytes()) == ("ok", "late")


def test_a_closed_line_leaves_the_switchboard_answering(board: tuple[Switchboard, bytes]) -> None:
    switchboard, key = board
    gone = Client(switchboard.address, authkey=key)
    gone.send_bytes(packed(("wait", (0.2,))))
    gone.close()  # the driver gave up on the round: the answer finds nobody
    assert ask(Client(switchboard.address, authkey=key), "echo", 5) == ("ok", (5,))


def test_the_driver_dials_with_the_key_and_is_refused_without_it(
    board: tuple[Switchboard, bytes],
) -> None:
    switchboard, key = board
    assert ask(dial(switchboard.address, key), "echo", 6) == ("ok", (6,))
    with pytest.raises(AuthenticationError):
        dial(switchboard.address, new_key())


def test_dialling_a_listener_that_never_answers_gives_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """A port that accepts but never speaks (a hung or foreign process): the driver's round
    must not wait on it for ever; the replica is then out until Ray gives its address again."""
    monkeypatch.setattr(lines, "DIAL_SECONDS", 1)
    with socket.create_server(("127.0.0.1", 0)) as mute:
        started = time.monotonic()
        with pytest.raises(LINE_ERRORS):
            dial(mute.getsockname()[:2], new_key())
        assert time.monotonic() - started < 5


def test_a_node_with_an_ipv6_address_takes_lines_too() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    key = new_key()
    try:
        switchboard = Switchboard("::1", key, answer)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    try:
        assert ask(dial(switchboard.address, key), "echo", 7) == ("ok", (7,))
    finally:
        switchboard.close()

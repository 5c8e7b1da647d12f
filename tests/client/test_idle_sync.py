"""An idle sync is one request answered 304, under 400 bytes on the wire in all (issue 5):
also the first one after a sync that pulled something, and with only the headers the
server needs."""

from __future__ import annotations

import httpx

from tests.client.conftest import MakeReplica, new_user, symptom_log
from tests.support import LiveServer
from waystation.client import HttpTransport, Replica
from waystation.client.transport import USER_AGENT


def _head_bytes(first_line: str, headers: httpx.Headers) -> int:
    """As HTTP/1.1 carries it: the line, ``name: value`` per header, each with CRLF, and
    the blank line."""
    return len(first_line) + 2 + sum(len(k) + len(v) + 4 for k, v in headers.raw) + 2


def test_the_first_idle_sync_after_a_pull_is_one_small_304(
    shared_server: LiveServer, make_replica: MakeReplica
) -> None:
    writer = make_replica(shared_server, new_user(shared_server))
    writer.put("symptom_logs", symptom_log("2025-10-01"))
    assert writer.sync().ok
    reader = make_replica(shared_server, new_user(shared_server))
    assert reader.sync().pulled >= 1  # the cursor moved: no ETag was ever seen for it

    answers: list[httpx.Response] = []
    transport = HttpTransport(
        shared_server.url,
        reader.session,
        httpx.Client(timeout=30, event_hooks={"response": [answers.append]}),
    )
    try:
        idle = reader.sync(transport=transport)
    finally:
        transport.close()
    assert idle.ok and (idle.pushed, idle.pulled) == (0, 0)
    [answer] = answers
    assert answer.status_code == 304
    request = answer.request
    sent = _head_bytes(
        f"{request.method} {request.url.raw_path.decode()} HTTP/1.1", request.headers
    )
    received = (
        _head_bytes(f"HTTP/1.1 {answer.status_code} {answer.reason_phrase}", answer.headers)
        + answer.num_bytes_downloaded
    )
    assert sent + received < 400, (sent, received, request.headers, answer.headers)
    assert request.headers["user-agent"] == USER_AGENT
    assert "connection" not in request.headers


def test_only_httpx_defaults_are_trimmed(replica: Replica) -> None:
    mine = httpx.Client(headers={"User-Agent": "clinic-app/2", "Accept-Encoding": "identity"})
    HttpTransport("http://127.0.0.1:9", replica.session, mine)
    assert mine.headers["user-agent"] == "clinic-app/2"
    assert mine.headers["accept-encoding"] == "identity"
    assert "accept" not in mine.headers and "connection" not in mine.headers
    mine.close()
    default = HttpTransport("http://127.0.0.1:9", replica.session)
    assert dict(default.http.headers) == {"user-agent": USER_AGENT, "accept-encoding": "gzip"}
    default.close()

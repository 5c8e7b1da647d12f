"""A request the HTTP parser itself refuses still gets the protocol's error shape: clients
branch on ``error.code`` whatever went wrong (schemathesis found a text/plain answer to an
invalid ``Content-Length``, test_openapi_conformance.py)."""

from __future__ import annotations

import socket

import orjson
import pytest

from tests.support import LiveServer


def _raw(server: LiveServer, request: bytes) -> tuple[bytes, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines)}
    return status_line.encode(), headers, body


@pytest.mark.parametrize("header", [b"Content-Length: Z)9d3w;0-rLW", b"Content-Length: -1"])
def test_hole_11_a_request_the_http_parser_refuses_gets_the_error_shape(
    shared_server: LiveServer, header: bytes
) -> None:
    status, headers, body = _raw(
        shared_server, b"GET /v1/conflicts/c-1 HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n\r\n"
    )
    assert status.startswith(b"HTTP/1.1 400")
    assert headers["content-type"] == "application/json"
    error = orjson.loads(body)["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert error["message"].startswith("invalid HTTP request")
    assert headers["connection"] == "close"

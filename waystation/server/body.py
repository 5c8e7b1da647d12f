"""Read a request body: size limit (before and after gzip decoding), gzip, JSON, model."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import orjson
from fastapi import Request
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from waystation.core.errors import PayloadTooLarge, RequestTimeout, ValidationError
from waystation.core.protocol import describe_pydantic_error

Model = TypeVar("Model", bound=BaseModel)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"request body over the limit of {limit} bytes (after gzip decoding); a push can be "
        "split into several smaller ones",
        {"limit": limit},
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, gunzipped when ``Content-Encoding: gzip``, never over ``limit``;
    raises RequestTimeout when it stalls for longer than the body timeout."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    idle = request.app.state.services.settings.body_timeout_s
    chunks: list[bytes] = []
    size = 0
    async for chunk in _chunks(request, idle):
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "identity").lower()
    if encoding == "gzip":
        inflater = zlib.decompressobj(wbits=31)
        try:
            body = inflater.decompress(body, limit + 1)
        except zlib.error:
            raise ValidationError("body is not valid gzip", {"field": "body"}) from None
        if len(body) > limit or inflater.unconsumed_tail:
            raise _too_large(limit)
    elif encoding != "identity":
        raise ValidationError(
            f"unsupported Content-Encoding {encoding!r}; use gzip", {"field": "content-encoding"}
        )
    return body


async def _chunks(request: Request, idle_s: float) -> AsyncIterator[bytes]:
    """The body's chunks, each within ``idle_s`` of the one before."""
    stream = request.stream()
    while True:
        try:
            chunk = await asyncio.wait_for(anext(stream), idle_s)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise RequestTimeout(
                f"the request body sent nothing for {idle_s:g} s; send it again",
                {"timeout_s": idle_s},
            ) from None
        yield chunk


async def read_json(request: Request, model: type[Model], limit: int) -> Model:
    """Parse the body into ``model``; VALIDATION_ERROR names the bad field."""
    body = await read_body(request, limit)
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValidationError(f"body is not valid JSON: {exc}", {"field": "body"}) from None
    if not isinstance(data, dict):
        raise ValidationError("body must be a JSON object", {"field": "body"})
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        raise describe_pydantic_error(exc) from None

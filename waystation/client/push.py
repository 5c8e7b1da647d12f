"""The push half of a sync: outbox batches out, one verdict per op back.

Each batch is marked SYNCING in one transaction before it leaves and gets its verdicts in
one transaction after the answer, so a crash at any point leaves either PENDING/SYNCING ops
(resent, deduplicated by the server) or recorded verdicts — never a lost or doubled op.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from waystation.client import outbox
from waystation.client.errors import LoginRequired, Offline
from waystation.client.events import SyncEvent
from waystation.client.local import LocalReplica
from waystation.client.outbox import OpStatus, OutboxEntry
from waystation.client.records import refresh_many
from waystation.client.result import OpIssue, SyncResult
from waystation.client.transport import PushAnswer, Transport
from waystation.core.errors import (
    DeviceRevoked,
    Forbidden,
    PayloadTooLarge,
    WaystationError,
)

# Failures that say nothing about the ops: no retry is spent on them.
_NOT_THE_OPS = (Offline, LoginRequired, DeviceRevoked, Forbidden)


def push_outbox(
    local: LocalReplica,
    transport: Transport,
    result: SyncResult,
    *,
    max_items: int | None,
    respect_backoff: bool,
    batch_size: int,
    to_push: int = 0,
) -> None:
    """Push PENDING ops until none is left (or ``max_items`` were sent).

    Raises the transport's error after putting the batch back (offline, login) or spending
    one retry of each op in it (the server may have seen it).
    """
    remaining = max_items
    size = max(1, batch_size)
    while remaining is None or remaining > 0:
        limit = size if remaining is None else min(size, remaining)
        batch = _take_batch(local, limit, respect_backoff)
        if not batch:
            return
        try:
            answer = transport.push(local.device_id, [e.to_change() for e in batch])
        except PayloadTooLarge as exc:
            if len(batch) > 1:
                _put_back(local, batch)
                size = max(1, len(batch) // 2)
                continue
            _reject_alone(local, batch[0], exc, result)
            continue
        except _NOT_THE_OPS:
            _put_back(local, batch)
            raise
        except WaystationError as exc:
            _spend_retry(local, batch, exc, result)
            raise
        except BaseException:
            _put_back(local, batch)
            raise
        _record_answer(local, batch, answer, result)
        if remaining is not None:
            remaining -= len(batch)
        local.events.emit(
            SyncEvent.of_run(
                "push", result, pending=local.pending_count(), to_push=max(to_push, result.pushed)
            )
        )


def _take_batch(local: LocalReplica, limit: int, respect_backoff: bool) -> list[OutboxEntry]:
    with local.db.transaction() as conn:
        due = outbox.now_ms() if respect_backoff else None
        batch = outbox.next_batch(conn, limit, due_before_ms=due)
        if batch:
            outbox.mark_syncing(conn, [e.seq for e in batch])
    return batch


def _put_back(local: LocalReplica, batch: Sequence[OutboxEntry]) -> None:
    with local.db.transaction() as conn:
        outbox.back_to_pending(conn, [e.seq for e in batch])


def _error_dict(exc: WaystationError) -> dict[str, Any]:
    return {"code": exc.code, "message": exc.message, "details": exc.details}


def _spend_retry(
    local: LocalReplica, batch: Sequence[OutboxEntry], exc: WaystationError, result: SyncResult
) -> None:
    policy = local.retry_policy
    with local.db.transaction() as conn:
        failed = outbox.record_failure(
            conn, batch, _error_dict(exc), max_retries=policy.max_retries, delay_s=policy.delay
        )
    result.failed += len(failed)
    result.issues.extend(_issue(e, "FAILED", _error_dict(exc)) for e in failed)


def _reject_alone(
    local: LocalReplica, entry: OutboxEntry, exc: WaystationError, result: SyncResult
) -> None:
    """One op too large for any request can never succeed: REJECTED with the server's error."""
    verdict = {"status": "rejected", "error": _error_dict(exc)}
    with local.db.transaction() as conn:
        outbox.record_verdict(conn, entry, verdict)
        refresh_many(conn, [(entry.collection, entry.record_id)])
    result.pushed += 1
    result.rejected += 1
    result.issues.append(_issue(entry, "REJECTED", _error_dict(exc)))


def _record_answer(
    local: LocalReplica, batch: Sequence[OutboxEntry], answer: PushAnswer, result: SyncResult
) -> None:
    by_op = {r.get("op_id"): r for r in answer.results if isinstance(r, dict)}
    unanswered: list[OutboxEntry] = []
    with local.db.transaction() as conn:
        for entry in batch:
            verdict = by_op.get(entry.op_id)
            try:
                status = outbox.record_verdict(conn, entry, verdict or {})
            except ValueError:
                unanswered.append(entry)
                continue
            result.pushed += 1
            if status is OpStatus.SYNCED:
                if verdict and verdict.get("status") == "duplicate":
                    result.duplicates += 1
                else:
                    result.applied += 1
                continue
            if status is OpStatus.CONFLICT:
                result.conflicts += 1
            else:
                result.rejected += 1
            error = (verdict or {}).get("error") or {}
            result.issues.append(_issue(entry, status.value, error))
        if unanswered:
            policy = local.retry_policy
            missing = {"code": "NO_RESULT", "message": "the server gave no result for this op"}
            failed = outbox.record_failure(
                conn, unanswered, missing, max_retries=policy.max_retries, delay_s=policy.delay
            )
            result.failed += len(failed)
            result.issues.extend(_issue(e, "FAILED", missing) for e in failed)
        refresh_many(conn, [(e.collection, e.record_id) for e in batch])
        if answer.server_hlc:
            local.observe_server(
                conn,
                answer.server_hlc,
                sent_at_ms=answer.sent_at_ms,
                received_at_ms=answer.received_at_ms,
            )
    result.bytes_sent += answer.bytes_sent
    result.bytes_received += answer.bytes_received


def _issue(entry: OutboxEntry, status: str, error: Any) -> OpIssue:
    error = error if isinstance(error, dict) else {}
    return OpIssue(
        op_id=entry.op_id,
        collection=entry.collection,
        record_id=entry.record_id,
        status=status,
        code=str(error.get("code", "UNKNOWN")),
        message=str(error.get("message", "")),
        details=dict(error.get("details") or {}),
    )

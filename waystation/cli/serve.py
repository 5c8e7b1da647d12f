"""``waystation serve`` and ``waystation demo``: run the server."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from waystation.cli.common import console, fail_usage, schema_from, store_from
from waystation.core.apply import DEFAULT_MAX_CLOCK_SKEW_MS

if TYPE_CHECKING:
    from waystation.server import Settings
    from waystation.server.workers import WorkerConfig
    from waystation.store import SqlStore


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("demo")(demo)


# No Server/Date headers: an idle sync is one small 304, every byte counts on 2G.
_UVICORN_OPTIONS: dict[str, Any] = {
    "access_log": False,
    "timeout_graceful_shutdown": 5,
    "server_header": False,
    "date_header": False,
}


def _protocol_options(header_timeout: float, forwarded_allow_ips: str) -> dict[str, Any]:
    """uvicorn's HTTP protocol with a deadline on request headers (server/timeouts.py; the
    deadline travels in the environment, which ``--workers`` processes inherit), and the
    proxies whose X-Forwarded-For names the client (logins are throttled per address)."""
    from waystation.server.timeouts import HEADER_TIMEOUT_ENV, HeaderTimeoutProtocol

    os.environ[HEADER_TIMEOUT_ENV] = str(header_timeout)
    return {
        "http": HeaderTimeoutProtocol,
        "proxy_headers": True,
        "forwarded_allow_ips": forwarded_allow_ips,
    }


def _tls_options(cert: Path | None, key: Path | None) -> dict[str, Any]:
    """uvicorn's TLS options for ``--tls-cert``/``--tls-key`` (none without them); exits 2
    when only one is given or they do not load, before anything starts."""
    import ssl

    if cert is None and key is None:
        return {}
    if cert is None or key is None:
        fail_usage("give both --tls-cert and --tls-key (or neither, behind a TLS proxy)")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        fail_usage(
            f"--tls-cert {cert} / --tls-key {key}: not a certificate chain and its "
            f"private key ({exc})"
        )
    return {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}


def _access_log_path(path: Path | None) -> str | None:
    """The absolute path of ``--access-log`` (workers may run elsewhere), created now;
    exits 2 when it cannot be opened, before anything starts."""
    from waystation.server.access_log import check_access_log_path

    if path is None:
        return None
    try:
        check_access_log_path(str(path))
    except OSError as exc:
        fail_usage(f"--access-log {path}: cannot write it ({exc.strerror})")
    return str(path.resolve())


def _run(
    store: SqlStore,
    host: str,
    port: int,
    settings: Settings,
    log_level: str,
    protocol: dict[str, Any],
) -> None:
    import uvicorn

    from waystation.server.app import create_served_app

    app = create_served_app(store, settings, log_level)
    try:
        uvicorn.run(app, host=host, port=port, log_level=log_level, **_UVICORN_OPTIONS, **protocol)
    finally:
        store.close()


def _run_workers(
    workers: int, config: WorkerConfig, host: str, port: int, protocol: dict[str, Any]
) -> None:
    """Start ``workers`` processes sharing one socket, each with its own app and pool."""
    import uvicorn

    from waystation.server.workers import CONFIG_ENV, FACTORY

    os.environ[CONFIG_ENV] = config.to_env()  # the spawned workers inherit it
    uvicorn.run(
        FACTORY,
        factory=True,
        workers=workers,
        host=host,
        port=port,
        log_level=config.log_level,
        **_UVICORN_OPTIONS,
        **protocol,
    )


def serve(
    db: str = typer.Option(
        ..., help="sqlite:////abs/path.db, a file path, or postgresql://user:pw@host/db."
    ),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="TCP port."),
    schema: str | None = typer.Option(
        None, help="Schema file (TOML); default: the shipped health schema."
    ),
    max_clock_skew: int = typer.Option(
        DEFAULT_MAX_CLOCK_SKEW_MS // 1000,
        help="Seconds a device clock may run ahead before its writes are re-stamped.",
    ),
    tombstone_retention_days: float = typer.Option(
        90, help="Days a deleted record is kept so offline devices learn of the delete."
    ),
    log_level: str = typer.Option("info", help="debug, info, warning or error."),
    workers: int = typer.Option(
        1,
        min=1,
        help="Server processes sharing the port (PostgreSQL only): one process uses one core.",
    ),
    header_timeout: float = typer.Option(
        15.0,
        min=0.1,
        help="Seconds a connection has to send a request's headers before "
        "it is closed (slowloris).",
    ),
    body_timeout: float = typer.Option(
        30.0,
        min=0.1,
        help="Seconds a request body may send nothing before it is "
        "answered 408 and its connection closed.",
    ),
    forwarded_allow_ips: str = typer.Option(
        "127.0.0.1",
        help="Reverse proxies (comma-separated addresses, or *) whose "
        "X-Forwarded-For header names the client: logins are throttled per address.",
    ),
    tls_cert: Path | None = typer.Option(
        None,
        metavar="FILE",
        help="Serve HTTPS with this certificate chain (PEM); with "
        "--tls-key. Without them, serve plain HTTP behind a TLS reverse proxy.",
    ),
    tls_key: Path | None = typer.Option(
        None, metavar="FILE", help="The private key (PEM) of --tls-cert."
    ),
    access_log: Path | None = typer.Option(
        None,
        metavar="FILE",
        help="Append one JSON line per request (method, path, "
        "status, bytes, ms; never the query or bodies) to FILE. Off by default.",
    ),
) -> None:
    """Run the sync server on a database (created and migrated when needed)."""
    from waystation.client.auth import is_loopback
    from waystation.server import Settings

    tls = _tls_options(tls_cert, tls_key)
    access_log_path = _access_log_path(access_log)
    store = store_from(db, schema_from(schema))
    if workers > 1 and store.db.is_sqlite:
        store.close()
        fail_usage(
            "--workers above 1 needs PostgreSQL: on SQLite one process is the one "
            "writer (and hears its own change events); run one process per database"
        )
    store.max_clock_skew_ms = max_clock_skew * 1000
    settings = Settings(
        max_clock_skew_ms=max_clock_skew * 1000,
        tombstone_retention_s=int(tombstone_retention_days * 86400),
        body_timeout_s=body_timeout,
        access_log_path=access_log_path,
    )
    plural = f" with {workers} worker processes" if workers > 1 else ""
    console.print(
        f"Waystation serving [bold]{store.db.url.split('@')[-1]}[/] "
        f"on {'https' if tls else 'http'}://{host}:{port}{plural}"
    )
    if not tls and not is_loopback(host):
        console.print(
            "[yellow]plain HTTP on a network interface: put a TLS reverse proxy in "
            "front (docs/operations.md) or use --tls-cert/--tls-key[/]"
        )
    protocol = {**_protocol_options(header_timeout, forwarded_allow_ips), **tls}
    if workers == 1:
        _run(store, host, port, settings, log_level, protocol)
        return
    from waystation.server.workers import WorkerConfig

    store.close()  # migrated; each worker opens its own
    _run_workers(workers, WorkerConfig(db, schema, settings, log_level), host, port, protocol)


def demo(
    port: int = typer.Option(8000, help="TCP port."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    db: Path = typer.Option(
        Path("waystation-demo.db"), help="Where the demo data lives; re-running reuses it."
    ),
) -> None:
    """Run a seeded demo clinic on a local SQLite file and print its logins."""
    from waystation.demo import DEMO_USERS, is_seeded, seed_demo
    from waystation.server import Settings

    store = store_from(str(db), schema_from(None))
    if not is_seeded(store):
        seed_demo(store)
        console.print(f"Seeded the demo clinic into {db}")
    else:
        console.print(f"Reusing the demo clinic in {db}")
    base = f"http://{host}:{port}"
    console.print(
        f"\n[bold]Waystation demo[/] at {base}  (health: {base}/healthz, API docs: {base}/docs)\n"
    )
    console.print("Logins (username / password — role):")
    for user in DEMO_USERS:
        console.print(f"  {user.username:<9} / {user.password:<14} — {user.who}")
    patient = next(user for user in DEMO_USERS if user.role == "patient")
    console.print(
        f"\nPatient portal: {base}/portal/  (sign in as {patient.username} / {patient.password})",
        highlight=False,
    )
    console.print(
        f"\nTry: curl -s -X POST {base}/v1/auth/token -H 'content-type: "
        'application/json\' -d \'{"username":"amina","password":"amina-demo"}\'\n'
    )
    from waystation.server.timeouts import DEFAULT_HEADER_TIMEOUT_S

    _run(
        store,
        host,
        port,
        Settings(),
        "info",
        _protocol_options(DEFAULT_HEADER_TIMEOUT_S, "127.0.0.1"),
    )

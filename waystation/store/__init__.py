"""Server storage: records, the change sequence, the op log, conflicts, users and devices.

One implementation over SQLAlchemy Core serves SQLite (the embedded default) and
PostgreSQL. ``open_store(url)`` is the door; ``Store`` (store/port.py) is the protocol the
server calls, ``SqlStore`` the implementation (with the administration the command line
needs besides).
"""

from waystation.store.database import Database, normalise_url
from waystation.store.port import Store
from waystation.store.store import SqlStore, open_store

__all__ = ["Database", "SqlStore", "Store", "normalise_url", "open_store"]

"""Server storage: records, the change sequence, the op log, conflicts, users and devices.

One implementation over SQLAlchemy Core serves SQLite (the embedded default) and
PostgreSQL. ``open_store(url)`` is the door; ``Store`` is the narrow interface the server
calls.
"""

from waystation.store.database import Database, normalise_url
from waystation.store.store import Store, open_store

__all__ = ["Database", "Store", "normalise_url", "open_store"]

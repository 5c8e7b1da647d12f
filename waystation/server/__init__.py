"""The HTTP server: thin FastAPI routes that parse, authorise, call core+store, serialise."""

from waystation.server.app import create_app
from waystation.server.settings import Settings

__all__ = ["Settings", "create_app"]

"""Waystation: offline-first data sync for health services.

The package is laid out in rooms with one door each: ``core`` (pure logic), ``store``
(server storage), ``server`` (HTTP), ``client`` (the Python SDK) and ``web`` (the browser side).
"""

__version__ = "0.1.0"
PROTOCOL_VERSION = 1

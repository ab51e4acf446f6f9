"""Emotion Lens web app: ``create_app`` builds one configured Flask app (pages, JSON API, Socket.IO).

The factory lives in ``webapp.factory`` and is imported on first use: ``python -m webapp`` imports this
package before running ``__main__``, and eventlet must monkey-patch before Flask or threading is imported.
``from webapp import create_app`` and ``gunicorn -k eventlet -w 1 'webapp:create_app()'`` work unchanged.
"""

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    """Import the factory lazily (PEP 562) so importing the package imports nothing heavy."""
    if name == "create_app":
        from .factory import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

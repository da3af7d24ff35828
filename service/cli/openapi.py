"""The committed OpenAPI document is rendered here, so `make openapi` and the drift test agree."""

from __future__ import annotations

import orjson

from service.settings import Settings


def render() -> str:
    from service.app import create_app

    app = create_app(Settings(database_url="sqlite+aiosqlite:///:memory:"))
    return orjson.dumps(app.openapi(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"

"""`creditgate serve` hands uvicorn a factory string: it must name this module's factory."""

from __future__ import annotations

from typing import Any

import pytest
import uvicorn
from uvicorn.importer import import_from_string

from creditgate.app import serve
from creditgate.settings import Settings


def test_the_uvicorn_factory_string_names_app_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: seen.append((args, kwargs)))
    serve.run(Settings(database_url="sqlite://"))
    [(args, kwargs)] = seen
    assert import_from_string(args[0]) is serve.app_from_env
    assert kwargs["factory"] is True
    assert kwargs["access_log"] is False

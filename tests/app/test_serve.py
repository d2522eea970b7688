"""`creditgate serve` hands uvicorn a factory string: it must name this module's factory."""

from __future__ import annotations

import os
from pathlib import Path
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


def test_several_workers_share_a_private_metrics_directory_removed_at_the_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(serve.MULTIPROC_DIR, raising=False)
    seen: list[str] = []

    def run(*_args: Any, **_kwargs: Any) -> None:
        seen.append(os.environ.get(serve.MULTIPROC_DIR, ""))
        assert not seen[-1] or Path(seen[-1]).is_dir()

    monkeypatch.setattr(uvicorn, "run", run)
    serve.run(Settings(database_url="sqlite://", workers=2))
    assert len(seen) == 1 and not Path(seen[0]).exists()
    assert serve.MULTIPROC_DIR not in os.environ
    serve.run(Settings(database_url="sqlite://", workers=1))  # one process: memory only
    assert len(seen) == 2 and seen[1] == ""

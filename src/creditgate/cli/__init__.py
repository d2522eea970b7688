"""The `creditgate` command."""

from creditgate.cli.main import main

__all__ = ["main"]

"""The domain core: pure Python, no web or database imports (a test enforces it)."""

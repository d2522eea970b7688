"""Storage: every SQL statement of creditgate lives in this package."""

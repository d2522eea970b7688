"""creditgate: a credit ledger and metering service behind the Firecrawl account API."""

__version__ = "0.1.0"

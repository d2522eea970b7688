"""The metering gateway in front of a self-hosted Firecrawl: admit, forward, settle, follow."""

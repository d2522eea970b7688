"""The HTTP layer: authenticate, call one service, render. No SQL, no ledger rules."""

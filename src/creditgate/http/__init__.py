"""The account and admin routes: authenticate, call one service, render. No SQL, no ledger
rules; the plumbing they share with the gateway is in creditgate.web."""

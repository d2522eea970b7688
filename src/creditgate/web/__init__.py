"""What both HTTP faces (the account and admin routes, the gateway) share: the app context,
auth, errors, bodies, responses, request logs, the edge, rate limits and the upstream client.
It imports neither face (tests/test_architecture.py checks it)."""

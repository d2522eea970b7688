"""The dashboard: server-rendered pages at /dashboard for a team (its key) and the operator
(the admin token). pages.py routes, session.py cookies and CSRF, charts.py SVG geometry."""

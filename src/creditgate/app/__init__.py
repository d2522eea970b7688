"""The composition root: the ASGI app assembled from web, http and gateway (asgi), and how it
is served (serve). The only package that imports both faces; the CLI starts the server here."""

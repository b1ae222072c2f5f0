"""The console's pages, one module per area, each with ``routes(console)``."""

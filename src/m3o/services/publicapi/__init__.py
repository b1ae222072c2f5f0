"""The publicapi service: the catalog of public APIs, and the view the gateway keeps of it."""

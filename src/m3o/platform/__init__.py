"""The composition root: builds processes of the platform from service definitions."""

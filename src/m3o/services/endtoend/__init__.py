"""endtoend: the live self-test of the whole platform (see ``README.md``)."""

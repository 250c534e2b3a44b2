"""The socialgate test suite (a package, so helpers import as `tests.support.<module>`)."""

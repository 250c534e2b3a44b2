"""Test helpers, the one home for them: import as `from tests.support.<module> import <name>`."""

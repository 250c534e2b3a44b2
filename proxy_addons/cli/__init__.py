"""The `socialgate` command line."""

"""The `socialgate` command line."""

import sys

from proxy_addons import hangup

# `socialgate run`: catch SIGHUP before click and mitmproxy are imported (the
# console script imports this package first); see `proxy_addons.hangup`.
if sys.argv[1:2] == ["run"]:
    hangup.catch_early()

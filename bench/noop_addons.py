"""Bench-only: four addons that do nothing, as many as socialgate adds.

mitmproxy offers every event to every addon (and to every addon of every
script); this measures what that dispatch alone costs bare mitmdump, so the
table can tell socialgate's own cost from the cost of being four addons.
"""

from __future__ import annotations


class Noop:
    pass


addons = [Noop(), Noop(), Noop(), Noop()]

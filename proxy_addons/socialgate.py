"""Entry point for `mitmdump -s proxy_addons/socialgate.py`.

Deliberately tiny and stable: mitmproxy hot-reloads `-s` scripts, and a broken
edit here would unload the gate and let traffic pass. All logic lives in the
installed package.
"""

from proxy_addons.addons import make_addons

addons = make_addons()

"""Start-up errors of ``mitmdump -s`` as one line, like everywhere else.

mitmproxy logs an exception raised while it configures a script as ``error in
script …`` with a traceback. Ours are `exceptions.OptionsError`s whose message is
already the whole story (``socialgate_policy=P: P:2: unknown key …``), so this
filter on mitmproxy's script logger drops the traceback and keeps that message.
Anything else (a bug) keeps its traceback.
"""

from __future__ import annotations

import logging

from mitmproxy import exceptions

_LOGGER = "mitmproxy.addons.script"


class OneLineOptionsErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, exceptions.OptionsError) and str(exc).startswith("socialgate"):
            record.msg, record.args = "%s", (str(exc),)
            record.exc_info, record.exc_text = None, None
        return True


def install() -> None:
    logger = logging.getLogger(_LOGGER)
    if not any(isinstance(f, OneLineOptionsErrors) for f in logger.filters):
        logger.addFilter(OneLineOptionsErrors())

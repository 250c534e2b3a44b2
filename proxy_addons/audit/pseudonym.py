"""Optional pseudonymisation of user names with a keyed hash.

``alice`` becomes ``u-`` and 20 hex digits of HMAC-SHA256(key, ``alice``): the
same person always gets the same pseudonym, so an investigation can still
follow one person, but the name is not in the log. Whoever holds the key can
re-identify anyone (hash each candidate name and compare): keep the key with
the people allowed to de-pseudonymise (e.g. HR), not on the proxy's log host.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

from proxy_addons.audit.record import Record

PREFIX = "u-"


class Pseudonymiser:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def name(self, user: str) -> str:
        digest = hmac.new(self._key, user.encode("utf-8"), hashlib.sha256).hexdigest()
        return PREFIX + digest[:20]

    def apply(self, record: Record) -> Record:
        """A copy with ``user.name`` and ``user.target.name`` (and the message) pseudonymised."""
        user = record.get("user")
        if not isinstance(user, dict):
            return record
        names: dict[str, str] = {}
        new_user: dict[str, Any] = dict(user)
        if isinstance(user.get("name"), str):
            names[user["name"]] = new_user["name"] = self.name(user["name"])
        target = user.get("target")
        if isinstance(target, dict) and isinstance(target.get("name"), str):
            names[target["name"]] = self.name(target["name"])
            new_user["target"] = {**target, "name": names[target["name"]]}
        if not names:
            return record
        message = str(record.get("message", ""))
        for real, pseudo in sorted(names.items(), key=lambda kv: -len(kv[0])):
            # Whole names only: "al" must not rewrite "allowed".
            message = re.sub(rf"(?<![\w.@-]){re.escape(real)}(?![\w.@-])", pseudo, message)
        return {**record, "user": new_user, "message": message}

"""Credentials in URLs (`scheme://user:password@host`) taken out of text before it is printed:
logs, span attributes and statuses, Events, the spool's record of the last error, and the output
of `kprof local`. Pure; adapters and runtimes call `text` on what they emit.
"""

from __future__ import annotations

import re

# scheme://userinfo@ where userinfo has no "/", "@" or whitespace: the RFC 3986 authority's user part.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/\s@\"'<>]+)@")
REDACTED = "REDACTED"


def text(value: str) -> str:
    """`value` with the user information of every URL in it replaced by `REDACTED`."""
    if "@" not in value:
        return value
    return _USERINFO.sub(lambda match: f"{match['scheme']}{REDACTED}@", value)

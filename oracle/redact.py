"""The one place secrets in URLs are hidden: logs, ``/healthz``, exception messages, CLI errors.

RPC URLs often carry an API key: in the userinfo (``https://user:key@host``), the query
(``?apikey=...``) or the path (``https://mainnet.infura.io/v3/<key>``). Everything the node
shows keeps only ``scheme://host[:port]`` of a URL (:func:`redact_url`); :func:`redact` does
that for every URL inside a text, and also hides the secret parts of every URL registered with
:func:`register_secret_url` wherever they appear on their own (an HTTP library's message may
name only the path: ``Max retries exceeded with url: /v3/<key>``). :class:`RedactingFilter`
applies :func:`redact` to log records (message, arguments and traceback);
:func:`install_log_redaction` puts it on the root logger's and uvicorn's handlers.
"""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import urlsplit

HIDDEN = "***"
_URL = re.compile(r"\b(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*)://(?P<rest>[^\s'\"<>]+)")
_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_MIN_SECRET_CHARS = 8  # "/" or "/rpc" is no secret worth hiding everywhere


def redact_url(url: str) -> str:
    """``scheme://host[:port]`` of a URL, plus ``/...`` when anything followed; userinfo dropped."""
    match = re.match(r"^(?:(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*)://)?(?:[^@/\s?#]*@)?(?P<host>[^/\s?#@]*)", url)
    assert match is not None  # every part is optional
    scheme = f"{match['scheme']}://" if match["scheme"] else ""
    return f"{scheme}{match['host']}" + ("/..." if len(url) > match.end() else "")


def register_secret_url(url: str | None) -> None:
    """Remember the secret parts of ``url`` (userinfo, path, query) so :func:`redact` hides them anywhere."""
    if not url:
        return
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return
    found = []
    if "@" in parts.netloc:
        userinfo = parts.netloc.rsplit("@", 1)[0]
        found += [userinfo, *userinfo.split(":")]
    path = parts.path.rstrip("/")
    if path:
        found.append(path)
        found += [segment for segment in path.split("/") if len(segment) >= 16]  # key-like segments
    if parts.query:
        found.append(parts.query)
        found += [pair.split("=", 1)[-1] for pair in parts.query.split("&")]
    with _secrets_lock:
        _secrets.update(s for s in found if len(s) >= _MIN_SECRET_CHARS)


def redact(text: str) -> str:
    """``text`` with every URL reduced to its host and every registered secret replaced by ``***``."""
    if not isinstance(text, str):
        text = str(text)
    text = _URL.sub(lambda m: redact_url(m.group(0)), text)
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)  # the longest first: a path before its segments
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, HIDDEN)
    return text


class RedactingFilter(logging.Filter):
    """Redacts a record's final message and traceback (on a handler: every logger's records)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to the handler's own error path
            return True
        record.msg, record.args = redact(message), None
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


_FILTER = RedactingFilter()


def install_log_redaction(logger_names: tuple[str, ...] = ("", "uvicorn", "uvicorn.error", "uvicorn.access")) -> None:
    """Put :class:`RedactingFilter` on every handler of the named loggers (idempotent)."""
    for name in logger_names:
        for handler in logging.getLogger(name).handlers:
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)

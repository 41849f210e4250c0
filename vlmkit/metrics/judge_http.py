"""HTTP transport for the API judge: one deadline per request, and no credentials sent to another origin.

urllib's ``timeout`` bounds each socket read, so a server that drips a byte at a time can hold a request for
ever; here every read (and the connect and send) gets only the time left before the request's deadline.
urllib also follows a 301/302/303 redirect with the ``Authorization`` header to any host; here a redirect is
followed only within the same origin (scheme, host, port) and refused otherwise.  Proxies from the environment
(``HTTPS_PROXY`` ...) still work: only the handlers for http, https and redirects are replaced.
"""
from __future__ import annotations

import email.utils
import functools
import http.client
import io
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Optional

from vlmkit.metrics.judge_base import JudgeError


class DeadlineExceeded(TimeoutError):
    """The whole request (connect, send, headers, body, redirects) ran past its deadline."""


class CrossOriginRedirect(JudgeError):
    """The endpoint redirected to another origin; following it would hand the API key to that server."""


def origin(url: str) -> tuple[str, str, int]:
    parts = urllib.parse.urlsplit(url)
    default_port = 443 if parts.scheme == "https" else 80
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port or default_port


def time_left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlineExceeded("request deadline passed")
    return left


def retry_after_seconds(value: Optional[str]) -> Optional[float]:
    """A ``Retry-After`` header (delay in seconds, or an HTTP date) as seconds from now; None when absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


class _DeadlineReader(io.RawIOBase):
    """The socket's reader, each read limited to the time left before the deadline."""

    def __init__(self, sock: socket.socket, deadline: float):
        super().__init__()
        self._sock = sock
        self._raw = sock.makefile("rb", buffering=0)  # holds a reference: the socket stays open while we read
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        self._sock.settimeout(time_left(self._deadline))
        return self._raw.readinto(buffer)

    def close(self) -> None:
        self._raw.close()
        super().close()


class _DeadlineSocket:
    """What http.client sees as its socket: sends and reads that respect the deadline."""

    def __init__(self, sock: socket.socket, deadline: float):
        self._sock = sock
        self._deadline = deadline

    def sendall(self, data) -> None:
        self._sock.settimeout(time_left(self._deadline))
        self._sock.sendall(data)

    def makefile(self, mode: str = "rb", *args, **kwargs):
        if "w" in mode:
            raise ValueError("the judge's socket is read-only through makefile")
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline))

    def __getattr__(self, name):
        return getattr(self._sock, name)


class _DeadlineMixin:
    def __init__(self, *args, deadline: float, **kwargs):
        self._deadline = deadline
        kwargs["timeout"] = time_left(deadline)  # bounds the connect (and the TLS handshake)
        super().__init__(*args, **kwargs)

    def connect(self) -> None:
        super().connect()
        self.sock = _DeadlineSocket(self.sock, self._deadline)


class _DeadlineHTTPConnection(_DeadlineMixin, http.client.HTTPConnection):
    pass


class _DeadlineHTTPSConnection(_DeadlineMixin, http.client.HTTPSConnection):
    pass


class _DeadlineHTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req):
        return self.do_open(functools.partial(_DeadlineHTTPConnection, deadline=req.deadline), req)


class _DeadlineHTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req):
        return self.do_open(functools.partial(_DeadlineHTTPSConnection, deadline=req.deadline), req,
                            context=self._context)


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Re-send the same POST (body and headers) within the origin; refuse to leave it."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if origin(newurl) != origin(req.full_url):
            fp.close()
            source, target = (urllib.parse.urlunsplit(urllib.parse.urlsplit(u)[:2] + ("", "", ""))
                              for u in (req.full_url, newurl))
            raise CrossOriginRedirect(
                f"{req.full_url} answered HTTP {code} redirecting to another origin ({target}, not {source}); "
                f"refused so that the API key is not sent there. If you trust {target}, set the judge's "
                f"base_url to it")
        new = urllib.request.Request(newurl, data=req.data, headers=dict(req.headers), method=req.get_method())
        new.deadline = req.deadline
        return new


def build_opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(_DeadlineHTTPHandler, _DeadlineHTTPSHandler, _SameOriginRedirects)


def post(opener: urllib.request.OpenerDirector, url: str, body: bytes, headers: dict[str, str],
         timeout_s: float) -> bytes:
    """POST and read the whole reply body within ``timeout_s`` overall; errors as urllib/http.client raise them."""
    deadline = time.monotonic() + timeout_s
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    request.deadline = deadline
    try:
        with opener.open(request, timeout=time_left(deadline)) as response:
            return response.read()
    except (TimeoutError, urllib.error.URLError) as err:
        # Every socket timeout is the time left before the deadline, so any timeout means the deadline passed.
        if isinstance(err, TimeoutError) or isinstance(getattr(err, "reason", None), TimeoutError):
            raise DeadlineExceeded(f"no complete reply within {timeout_s} s") from err
        raise

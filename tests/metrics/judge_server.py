"""A real OpenAI-style chat-completions server on 127.0.0.1 for judge tests, with scripted faults."""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeChatServer:
    """``reply(messages) -> str`` gives the content; ``faults`` (consumed first, one per request, in order) can be
    "500", "badjson" (a body that is not JSON), "nochoices", "text:<content>" (a verbatim content),
    "429:<retry-after>" (rate limited, with that Retry-After header), "redirect:<location>" (HTTP 307),
    "truncate" (half the promised body, then the connection closes), "reset" (closes without answering),
    "drip" (headers at once, then the body a byte every ``drip_s``) or "driphead" (all of it, status line
    included, a byte every ``drip_s``)."""

    def __init__(self, reply: Callable[[list[dict]], str], faults: list[str] | None = None, status: int = 200,
                 drip_s: float = 0.1):
        self.reply = reply
        self.faults = list(faults or [])
        self.status = status
        self.drip_s = drip_s
        self.requests: list[dict] = []
        # one (bytes sent, bytes in the reply) per dripped reply, recorded when it ends or the client hangs up
        self.drips: list[tuple[int, int]] = []
        self.drip_ended = threading.Event()
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                return

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append({"path": self.path, "body": body,
                                            "auth": self.headers.get("Authorization")})
                    fault = server.faults.pop(0) if server.faults else None
                if server.status != 200:
                    return self._send(server.status, b'{"error": "nope"}')
                if fault == "500":
                    return self._send(500, b'{"error": "overloaded"}')
                if fault == "badjson":
                    return self._send(200, b"<html>gateway hiccup</html>")
                if fault == "nochoices":
                    return self._send(200, b'{"choices": []}')
                if fault and fault.startswith("429:"):
                    return self._send(429, b'{"error": "slow down"}', {"Retry-After": fault[4:]})
                if fault and fault.startswith("redirect:"):
                    return self._send(307, b"", {"Location": fault[9:]})
                if fault == "reset":
                    self.close_connection = True
                    return None
                content = fault[5:] if fault and fault.startswith("text:") else server.reply(body["messages"])
                payload = {"id": "x", "object": "chat.completion", "model": body["model"],
                           "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                        "finish_reason": "stop"}]}
                data = json.dumps(payload).encode()
                if fault == "truncate":
                    self.close_connection = True
                    return self._send(200, data, body=data[:len(data) // 2])
                if fault in ("drip", "driphead"):
                    return self._drip(data, head=fault == "driphead")
                self._send(200, data)

            def _head(self, code: int, data: bytes, extra: dict[str, str] | None = None) -> bytes:
                lines = [f"HTTP/1.0 {code} X", "Content-Type: application/json", f"Content-Length: {len(data)}"]
                lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
                return ("\r\n".join(lines) + "\r\n\r\n").encode()

            def _send(self, code: int, data: bytes, extra: dict[str, str] | None = None, body: bytes | None = None):
                self.wfile.write(self._head(code, data, extra) + (data if body is None else body))

            def _drip(self, data: bytes, head: bool):
                self.close_connection = True
                whole = self._head(200, data) + data
                start = sent = 0 if head else len(whole) - len(data)
                try:
                    self.wfile.write(whole[:start])
                    for sent in range(start, len(whole)):
                        time.sleep(server.drip_s)
                        self.wfile.write(whole[sent:sent + 1])
                    sent = len(whole)
                except OSError:  # the client gave up: stop dripping
                    pass
                with server.lock:
                    server.drips.append((sent, len(whole)))
                server.drip_ended.set()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

"""A real OpenAI-style chat-completions server on 127.0.0.1 for judge tests, with scripted faults."""
from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeChatServer:
    """``reply(messages) -> str`` gives the content; ``faults`` (consumed first, in order) can be
    "500", "badjson" (a body that is not JSON), "nochoices" or "text:<content>" (a verbatim content)."""

    def __init__(self, reply: Callable[[list[dict]], str], faults: list[str] | None = None, status: int = 200):
        self.reply = reply
        self.faults = list(faults or [])
        self.status = status
        self.requests: list[dict] = []
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
                content = fault[5:] if fault and fault.startswith("text:") else server.reply(body["messages"])
                payload = {"id": "x", "object": "chat.completion", "model": body["model"],
                           "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                        "finish_reason": "stop"}]}
                self._send(200, json.dumps(payload).encode())

            def _send(self, code: int, data: bytes):
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

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

"""A local mock LLM provider for end-to-end tests and local runs: OpenAI Chat Completions and
Responses, Anthropic Messages, JSON and SSE, with realistic usage. It records every request it receives so
tests can assert what the upstream actually saw (for example, that PII was redacted before it).

Behaviour keyed on the last user message:
- contains "say card": the reply contains a card number split across two SSE chunks;
- "say gzip" (OpenAI chat): a gzip-compressed reply, whatever the request accepted;
- "say big N" (OpenAI chat): a reply of about N bytes of text ("say big N chunked": without a
  content-length, in 1 MiB chunks);
- otherwise: a short canned reply.
A request carrying `x-mock-delay-ms: N` is answered after N ms (a slow provider), one carrying
`x-mock-pace-ms: N` gets its SSE events N ms apart.
Any other path echoes the request body back byte for byte (for pass-through tests).
SSE events are paced 20 ms apart so they reach the filter as separate chunks, unless the request
carries `x-mock-fast` (load tests).

Run standalone: python3 tests/e2e/mock_llm.py --port 18081
"""
import argparse
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CARD_PIECES = ["Sure, the test card is 4111 11", "11 1111 1111", " and that is all."]
PLAIN_PIECES = ["Hello", " from", " the", " mock", " model."]


class Recorder:
    """Requests the mock answered, and `aborted`: requests whose body never arrived whole (the
    client, here Envoy after a local reply, reset the stream after sending the headers)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = []
        self.aborted = []

    def abort(self, path, headers, partial):
        with self.lock:
            self.aborted.append({"path": path, "headers": headers, "body": partial})

    def add(self, path, headers, body):
        with self.lock:
            self.requests.append({"path": path, "headers": headers, "body": body})

    def last(self):
        with self.lock:
            return self.requests[-1] if self.requests else None

    def clear(self):
        with self.lock:
            self.requests.clear()
            self.aborted.clear()


def last_user_text(body: dict) -> str:
    for msg in reversed(body.get("messages") or []):
        if msg.get("role") == "user":
            c = msg.get("content")
            if isinstance(c, str):
                return c
            if isinstance(c, list):
                return " ".join(p.get("text", "") for p in c if isinstance(p, dict))
    return ""


def make_handler(recorder: Recorder):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def setup(self):
            super().setup()
            # headers and body go out in separate writes: without this, Nagle's algorithm and
            # delayed ACKs add ~40 ms to every response
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _body(self) -> bytes | None:
            """The request body; None when it was cut short (recorded as aborted)."""
            n = int(self.headers.get("content-length") or 0)
            if not n and "chunked" in (self.headers.get("transfer-encoding") or "").lower():
                return self._chunked()
            try:
                raw = self.rfile.read(n) if n else b""
            except (ConnectionResetError, OSError):
                raw = b""
            if len(raw) < n:
                recorder.abort(self.path, dict(self.headers), raw)
                self.close_connection = True
                return None
            return raw

        def _chunked(self) -> bytes | None:
            body = b""
            try:
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        return body
                    body += self.rfile.read(size)
                    self.rfile.readline()
            except (ConnectionResetError, OSError, ValueError):
                recorder.abort(self.path, dict(self.headers), body)
                self.close_connection = True
                return None

        def _send(self, status: int, body: bytes, ctype: str = "application/json", encoding: str = ""):
            self.send_response(status)
            self.send_header("content-type", ctype)
            if encoding:
                self.send_header("content-encoding", encoding)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _sse(self, events):
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("cache-control", "no-cache")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            try:
                for ev in events:
                    data = ev.encode()
                    self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                    self.wfile.flush()
                    if not self.headers.get("x-mock-fast"):
                        # separate network chunks (`x-mock-pace-ms`: a slower stream)
                        time.sleep(int(self.headers.get("x-mock-pace-ms") or 20) / 1000)
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client went away mid-stream

        def do_GET(self):
            recorder.add(self.path, dict(self.headers), b"")
            self._send(200, json.dumps({"path": self.path}).encode())

        def do_POST(self):
            raw = self._body()
            if raw is None:
                return
            recorder.add(self.path, dict(self.headers), raw)
            if self.headers.get("x-mock-delay-ms"):  # a slow provider: requests overlap
                time.sleep(int(self.headers["x-mock-delay-ms"]) / 1000)
            if self.path.startswith("/v1/chat/completions"):
                return self.openai(raw)
            if self.path.startswith("/v1/messages"):
                return self.anthropic(raw)
            if self.path.startswith("/v1/responses"):
                return self.openai_responses(raw)
            self._send(200, raw, self.headers.get("content-type") or "application/octet-stream")

        def openai(self, raw: bytes):
            try:
                body = json.loads(raw)
            except ValueError:
                return self._send(400, json.dumps({"error": {"message": "invalid JSON", "type": "invalid_request_error"}}).encode())
            text_in = last_user_text(body)
            pieces = CARD_PIECES if "say card" in text_in else PLAIN_PIECES
            if text_in.startswith("say big "):
                pieces = ["lorem ipsum " * (int(text_in.split()[2]) // 12)]
                if "chunked" in text_in:  # no content-length: the size is known only at the end
                    data = json.dumps({
                        "id": "chatcmpl-mock", "object": "chat.completion", "created": 1, "model": body.get("model"),
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": pieces[0]}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 21, "completion_tokens": 17, "total_tokens": 38}}).encode()
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    self.send_header("transfer-encoding", "chunked")
                    self.end_headers()
                    for i in range(0, len(data), 1 << 20):
                        part = data[i:i + (1 << 20)]
                        self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                    self.wfile.write(b"0\r\n\r\n")
                    return
            model = body.get("model", "gpt-4o-mini")
            usage = {"prompt_tokens": 21, "completion_tokens": 17, "total_tokens": 38,
                     "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}}
            if "say gzip" in text_in:  # compressed whatever the request asked for
                pieces = ["zipped 4111 1111 1111 1111"]
            if not body.get("stream"):
                reply = json.dumps({
                    "id": "chatcmpl-mock", "object": "chat.completion", "created": 1, "model": model,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(pieces)}, "finish_reason": "stop"}],
                    "usage": usage}).encode()
                if "say gzip" in text_in:
                    import gzip
                    return self._send(200, gzip.compress(reply), encoding="gzip")
                return self._send(200, reply)
            def chunk(delta, finish=None):
                return {"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": model,
                        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            events = [chunk({"role": "assistant", "content": ""})] + [chunk({"content": p}) for p in pieces] + [chunk({}, "stop")]
            out = [f"data: {json.dumps(e)}\n\n" for e in events]
            if (body.get("stream_options") or {}).get("include_usage"):
                out.append(f"data: {json.dumps({'id': 'chatcmpl-mock', 'object': 'chat.completion.chunk', 'created': 1, 'model': model, 'choices': [], 'usage': usage})}\n\n")
            out.append("data: [DONE]\n\n")
            self._sse(out)

        def openai_responses(self, raw: bytes):
            try:
                body = json.loads(raw)
            except ValueError:
                return self._send(400, json.dumps({"error": {"message": "invalid JSON", "type": "invalid_request_error"}}).encode())
            inp = body.get("input")
            text_in = inp if isinstance(inp, str) else json.dumps(inp)
            pieces = CARD_PIECES if "say card" in text_in else PLAIN_PIECES
            model = body.get("model", "gpt-4.1-mini")
            usage = {"input_tokens": 31, "input_tokens_details": {"cached_tokens": 8},
                     "output_tokens": 19, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 50}
            text = "".join(pieces)
            message = {"id": "msg_mock", "type": "message", "status": "completed", "role": "assistant",
                       "content": [{"type": "output_text", "text": text, "annotations": []}]}

            def response(status, output, usage=None):
                return {"id": "resp_mock", "object": "response", "created_at": 1, "status": status, "model": model,
                        "output": output, "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
                        "usage": usage}
            if not body.get("stream"):
                return self._send(200, json.dumps(response("completed", [message], usage)).encode())
            seq = iter(range(1000))
            evs = [("response.created", {"type": "response.created", "sequence_number": next(seq), "response": response("in_progress", [])}),
                   ("response.output_item.added", {"type": "response.output_item.added", "sequence_number": next(seq), "output_index": 0,
                    "item": {"id": "msg_mock", "type": "message", "status": "in_progress", "role": "assistant", "content": []}}),
                   ("response.content_part.added", {"type": "response.content_part.added", "sequence_number": next(seq), "item_id": "msg_mock",
                    "output_index": 0, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}})]
            evs += [("response.output_text.delta", {"type": "response.output_text.delta", "sequence_number": next(seq), "item_id": "msg_mock",
                     "output_index": 0, "content_index": 0, "delta": p, "logprobs": []}) for p in pieces]
            evs += [("response.output_text.done", {"type": "response.output_text.done", "sequence_number": next(seq), "item_id": "msg_mock",
                     "output_index": 0, "content_index": 0, "text": text, "logprobs": []}),
                    ("response.output_item.done", {"type": "response.output_item.done", "sequence_number": next(seq), "output_index": 0, "item": message}),
                    ("response.completed", {"type": "response.completed", "sequence_number": next(seq), "response": response("completed", [message], usage)})]
            self._sse([f"event: {t}\ndata: {json.dumps(d)}\n\n" for t, d in evs])

        def anthropic(self, raw: bytes):
            try:
                body = json.loads(raw)
            except ValueError:
                return self._send(400, json.dumps({"type": "error", "error": {"type": "invalid_request_error", "message": "invalid JSON"}}).encode())
            pieces = CARD_PIECES if "say card" in last_user_text(body) else PLAIN_PIECES
            model = body.get("model", "claude-sonnet-4-5")
            if not body.get("stream"):
                return self._send(200, json.dumps({
                    "id": "msg_mock", "type": "message", "role": "assistant", "model": model,
                    "content": [{"type": "text", "text": "".join(pieces)}], "stop_reason": "end_turn", "stop_sequence": None,
                    "usage": {"input_tokens": 25, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 15}}).encode())
            evs = [("message_start", {"type": "message_start", "message": {"id": "msg_mock", "type": "message", "role": "assistant", "model": model,
                    "content": [], "stop_reason": None, "stop_sequence": None,
                    "usage": {"input_tokens": 25, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 1}}}),
                   ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})]
            evs += [("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}) for p in pieces]
            evs += [("content_block_stop", {"type": "content_block_stop", "index": 0}),
                    ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": {"output_tokens": 15}}),
                    ("message_stop", {"type": "message_stop"})]
            self._sse([f"event: {t}\ndata: {json.dumps(d)}\n\n" for t, d in evs])

    return Handler


def serve(port: int = 0):
    """Starts the mock in a thread; returns (server, recorder)."""
    recorder = Recorder()
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(recorder))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, recorder


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=18081)
    args = ap.parse_args()
    srv, _ = serve(args.port)
    print(f"mock LLM on http://127.0.0.1:{srv.server_address[1]}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass

"""A small web app whose request handlers call gearq tasks (stdlib ``http.server`` only).

    python examples/web_app.py                 # web server + worker in one process
    python examples/web_app.py web --port 8000 # only the web server
    python examples/web_app.py worker          # only the worker (run as many as you like)

Servers come from ``GEARQ_SERVERS``; without it the all-in-one mode starts an embedded job
server (the split modes need a real one, since they are separate processes).

Endpoints (all answer JSON):

    GET  /quote?sku=book&qty=3   foreground: .delay().get(), the answer is in the response
    GET  /divide?a=1&b=0         a task's ZeroDivisionError becomes a 400 with its message
    POST /thumbnails  (body: image name)
                                 background: .send(), answered 202 with a task id once
                                 the job server has the job
    GET  /thumbnails/<id>        the background task's state and progress, from the server

In production the worker is ``gearq worker examples.web_app`` and the web part is your
WSGI/ASGI app; the handlers stay the same.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from gearq import App, BackgroundResult, TaskContext

app = App("webshop")

PRICES = {"book": 1250, "pen": 180, "mug": 900}  # cents


@app.task(name="web.quote")
def quote(sku: str, qty: int) -> dict[str, Any]:
    if sku not in PRICES:
        raise KeyError(f"unknown sku {sku!r}")
    total = PRICES[sku] * qty
    return {"sku": sku, "qty": qty, "total_cents": total}


@app.task(name="web.divide")
def divide(a: float, b: float) -> float:
    return a / b


@app.task(name="web.thumbnail", bind=True)
def thumbnail(ctx: TaskContext, image: str, sizes: int = 4) -> str:
    for done in range(1, sizes + 1):
        time.sleep(0.1)  # resize once
        ctx.progress(done, sizes)
    return f"{image}: {sizes} thumbnails"


# Background tasks started by this web process. A real app would keep the ids in its
# database; the status itself always comes from the job servers.
_started: dict[str, BackgroundResult] = {}
_started_lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    server_version = "gearq-example"

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            if url.path == "/quote":
                result = quote.delay(query["sku"], int(query.get("qty", "1")))
                self.answer(HTTPStatus.OK, result.get(timeout=10))
            elif url.path == "/divide":
                value = divide.delay(float(query["a"]), float(query["b"])).get(timeout=10)
                self.answer(HTTPStatus.OK, {"result": value})
            elif url.path.startswith("/thumbnails/"):
                self.thumbnail_status(url.path.rsplit("/", 1)[1])
            else:
                self.answer(HTTPStatus.NOT_FOUND, {"error": "no such page"})
        except (KeyError, ValueError, ZeroDivisionError) as exc:
            # Remote errors arrive as their own types (KeyError, ZeroDivisionError, ...).
            self.answer(HTTPStatus.BAD_REQUEST, {"error": f"{type(exc).__name__}: {exc}"})

    def do_POST(self) -> None:
        if self.path != "/thumbnails":
            self.answer(HTTPStatus.NOT_FOUND, {"error": "no such page"})
            return
        length = int(self.headers.get("Content-Length", "0"))
        image = self.rfile.read(length).decode() or "unnamed.png"
        background = thumbnail.send(image)
        # Answer only once a job server has the job: from then on it is durable (with a
        # persistent queue), and its status can be asked for.
        background.created(timeout=10)
        with _started_lock:
            _started[background.id] = background
        self.answer(HTTPStatus.ACCEPTED, {"id": background.id})

    def thumbnail_status(self, task_id: str) -> None:
        with _started_lock:
            background = _started.get(task_id)
        if background is None:
            self.answer(HTTPStatus.NOT_FOUND, {"error": "unknown task"})
            return
        status = background.status()  # GET_STATUS_UNIQUE on the job servers
        self.answer(
            HTTPStatus.OK,
            {"id": task_id, "state": status.state, "progress": list(status.progress or ())},
        )

    def answer(self, status: HTTPStatus, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep the example's output to what it prints itself


def serve_web(port: int) -> None:
    httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    # SIGTERM (and Ctrl-C) stop the server; shutdown() must come from another thread.
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    serving = threading.Thread(target=httpd.serve_forever, daemon=True)
    serving.start()
    print(f"listening on http://127.0.0.1:{httpd.server_address[1]}/", flush=True)
    stop.wait()
    httpd.shutdown()
    httpd.server_close()
    app.close(wait=10)  # let answers still on their way arrive
    print("web server stopped", flush=True)


def run_worker_thread() -> tuple[threading.Thread, Any]:
    worker = app.worker(concurrency=8)
    thread = threading.Thread(target=worker.work, name="gearq-worker", daemon=True)
    thread.start()
    return thread, worker


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("mode", nargs="?", choices=["all", "web", "worker"], default="all")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    args = parser.parse_args(argv)

    if args.mode == "worker":
        print(f"worker serving {', '.join(sorted(app.tasks))} on {app.conf.servers}", flush=True)
        app.worker(concurrency=8).work(handle_signals=True)
        print("worker stopped", flush=True)
        return
    if args.mode == "web":
        serve_web(args.port)
        return

    embedded = None
    if not os.environ.get("GEARQ_SERVERS"):
        from gearq.server import EmbeddedServer

        embedded = EmbeddedServer().start()
        app.configure(servers=embedded.address)
        print(f"(no GEARQ_SERVERS: using an embedded job server at {embedded.address})")
    thread, worker = run_worker_thread()
    try:
        serve_web(args.port)
    finally:
        worker.request_stop()
        thread.join(10)
        if embedded is not None:
            embedded.stop()


if __name__ == "__main__":
    main(sys.argv[1:])

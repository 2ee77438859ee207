"""I/O-bound crawling: fetch 200 pages from a local HTTP server with 16 threads.

The server runs in this process on 127.0.0.1 (nothing leaves the machine) and answers each
request after a short delay, like a real remote server; 16 fetching threads overlap those
waits, so the pipeline takes about 1/16 of the sequential time. Like a real server, it fails
a few pages (HTTP 500) and never answers a few others in time: ``map(..., timeout=...,
on_error=...)`` records those and the crawl goes on, keeping every page it did fetch.
"""

from __future__ import annotations

import hashlib
import threading
import time
import urllib.request
import warnings
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pipeline_executor import Monitor, Pipeline

PAGES = 200
DELAY = 0.02  # seconds the server takes per page
HANG = 3.0  # seconds it takes on the pages that hang
TIMEOUT = 2.0  # seconds the crawler gives each page (ample, even on a loaded machine)


def broken(n: int) -> bool:
    return n % 50 == 7  # 4 pages answer HTTP 500


def hanging(n: int) -> bool:
    return n % 50 == 33  # 4 pages answer only after HANG seconds


class SlowPages(BaseHTTPRequestHandler):
    """Serves /page/<n> with a body made from n, after DELAY seconds."""

    def do_GET(self) -> None:
        n = int(self.path.rsplit("/", 1)[-1])
        time.sleep(HANG if hanging(n) else DELAY)  # the "network"
        if broken(n):
            self.send_error(500)
            return
        body = hashlib.sha256(self.path.encode()).hexdigest().encode() * 8
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep the example's output quiet


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = (
        64  # the default 5 drops bursts of connections, and clients retry 1 s later
    )


def urls(base: str, count: int) -> Iterator[str]:
    for n in range(count):
        yield f"{base}/page/{n}"


def fetch(url: str) -> tuple[str, bytes]:
    with urllib.request.urlopen(url, timeout=10.0) as response:
        return url, response.read()


def sizes(pages: Iterable[tuple[str, bytes]]) -> dict[str, int]:
    return {url: len(body) for url, body in pages}


def main() -> None:
    server = Server(("127.0.0.1", 0), SlowPages)
    serving = threading.Thread(target=server.serve_forever, name="http-server")
    serving.start()
    failed: list[tuple[str, Exception]] = []
    monitor = Monitor()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        start = time.perf_counter()
        with warnings.catch_warnings(record=True):  # the abandoned calls: counted below
            warnings.simplefilter("always")
            fetched = (
                Pipeline.source(urls, base=base, count=PAGES)
                .map(
                    fetch,
                    threads=16,
                    timeout=TIMEOUT,
                    on_error=lambda url, exc: failed.append((url, exc)),
                )
                .sink(sizes)
                .run(inactivity_timeout=30, monitor=monitor)
            )
        elapsed = time.perf_counter() - start
    finally:
        server.shutdown()
        serving.join()
        server.server_close()
    stage = monitor.stats().stages[1]
    print(
        f"fetched {len(fetched)} pages, {sum(fetched.values()):,} bytes, in {elapsed:.2f} s "
        f"with 16 threads (one at a time would take about {PAGES * DELAY:.1f} s)"
    )
    print(
        f"{stage.failed} pages failed, {stage.timed_out} of them timed out "
        f"({len(stage.abandoned)} threads abandoned):"
    )
    for url, exc in sorted(failed, key=lambda f: int(f[0].rsplit("/", 1)[-1])):
        print(f"  {url.removeprefix(base)}: {type(exc).__name__}: {exc}")


if __name__ == "__main__":
    main()

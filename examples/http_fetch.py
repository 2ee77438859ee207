"""I/O-bound crawling: fetch 200 pages from a local HTTP server with 16 threads.

The server runs in this process on 127.0.0.1 (nothing leaves the machine) and answers each
request after a short delay, like a real remote server; 16 fetching threads overlap those
waits, so the pipeline takes about 1/16 of the sequential time.
"""

from __future__ import annotations

import hashlib
import threading
import time
import urllib.request
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pipeline_executor import Pipeline

PAGES = 200
DELAY = 0.02  # seconds the server takes per page


class SlowPages(BaseHTTPRequestHandler):
    """Serves /page/<n> with a body made from n, after DELAY seconds."""

    def do_GET(self) -> None:
        time.sleep(DELAY)  # the "network"
        body = hashlib.sha256(self.path.encode()).hexdigest().encode() * 8
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep the example's output quiet


def urls(base: str, count: int) -> Iterator[str]:
    for n in range(count):
        yield f"{base}/page/{n}"


def fetch(urls: Iterable[str], timeout: float) -> Iterator[tuple[str, bytes]]:
    for url in urls:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            yield url, response.read()


def sizes(pages: Iterable[tuple[str, bytes]]) -> dict[str, int]:
    return {url: len(body) for url, body in pages}


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowPages)
    server.daemon_threads = True
    serving = threading.Thread(target=server.serve_forever, name="http-server")
    serving.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        start = time.perf_counter()
        fetched = (
            Pipeline.source(urls, base=base, count=PAGES)
            .then(fetch, threads=16, timeout=10.0)
            .sink(sizes)
            .run(inactivity_timeout=30)
        )
        elapsed = time.perf_counter() - start
    finally:
        server.shutdown()
        serving.join()
        server.server_close()
    print(
        f"fetched {len(fetched)} pages, {sum(fetched.values()):,} bytes, in {elapsed:.2f} s "
        f"with 16 threads (one at a time would take about {PAGES * DELAY:.1f} s)"
    )


if __name__ == "__main__":
    main()

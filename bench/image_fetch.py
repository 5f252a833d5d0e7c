"""Benchmark: how fast a remote photo fetch gives up on a slow server, against the policy's timeouts.

A local HTTP server on 127.0.0.1 answers after `--server-delay` seconds; the fetch uses `--timeout` per attempt
and `--retries` extra attempts. Prints the time to give up and its ratio to the ideal (attempts x timeout plus
backoff). Usage: python bench/image_fetch.py --timeout 0.3 --retries 1 --repeats 5
"""

from __future__ import annotations

import argparse
import http.server
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from catalog import ImagePolicy, TransientFetchError, fetch_image_bytes, resolve_image_ref  # noqa: E402


def slow_server(delay_s: float) -> http.server.ThreadingHTTPServer:
    """A server whose every answer comes after delay_s (longer than the client waits)."""

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # http.server's naming
            time.sleep(delay_s)
            try:
                self.send_response(200)
                self.end_headers()
            except OSError:  # the client gave up first, as it should
                pass

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return httpd


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--timeout", type=float, default=0.3)
    parser.add_argument("--retries", type=int, default=1)
    parser.add_argument("--backoff", type=float, default=0.0)
    parser.add_argument("--server-delay", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    httpd = slow_server(args.server_delay)
    url = f"http://127.0.0.1:{httpd.server_address[1]}/slow.png"
    policy = ImagePolicy(
        allowed_hosts=("127.0.0.1",), timeout_s=args.timeout, retries=args.retries, backoff_s=args.backoff
    )
    ref = resolve_image_ref(url, Path("."), policy)
    ideal = (args.retries + 1) * args.timeout + sum(args.backoff * 2**n for n in range(args.retries))
    times = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        try:
            fetch_image_bytes(ref, policy)
        except TransientFetchError:
            times.append(time.perf_counter() - started)
        else:
            print("the slow server answered in time: raise --server-delay above --timeout")
            return 1
    httpd.shutdown()
    median = statistics.median(times)
    print(f"{args.retries + 1} attempts x {args.timeout:.2f} s timeout (+ backoff) = {ideal:.2f} s ideal")
    print(f"gave up after (median of {args.repeats}): {median:.2f} s  ({median / ideal:.2f} x ideal)")
    print(f"  runs (s): {', '.join(f'{t:.2f}' for t in times)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

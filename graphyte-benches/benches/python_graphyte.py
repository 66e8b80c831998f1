"""Drives the Python graphyte (the PyPI package) for benches/throughput.rs.

    python python_graphyte.py PORT sync COUNT
    python python_graphyte.py PORT interval COUNT INTERVAL

The Rust bench runs the loopback drain that counts what arrives; this script
only sends. Protocol on stdin/stdout, one line each:

  -> "ready graphyte=<version> python=<version>"   after the Sender is made
  <- "go"                                           start sending now
  -> "result seconds=<caller time of the COUNT sends> count=<COUNT>"
  <- "stop" (interval mode only)                    then Sender.stop() and exit

Names come from a table made before timing (as the Rust producers do), values
are distinct: `bench.py.m<i % 1024> <i>`.
"""

import sys
import time
from importlib.metadata import version

import graphyte


def main():
    port = int(sys.argv[1])
    mode = sys.argv[2]
    count = int(sys.argv[3])
    names = ["bench.py.m%d" % i for i in range(1024)]
    if mode == "sync":
        # One new TCP connection per send: how graphyte 1.7 sends without an interval.
        sender = graphyte.Sender("127.0.0.1", port=port, raise_send_errors=True)
    elif mode == "interval":
        interval = float(sys.argv[4])
        # queue_size=None: round(interval) * 100, i.e. unbounded below 0.5 s.
        sender = graphyte.Sender("127.0.0.1", port=port, interval=interval)
    else:
        sys.exit("unknown mode %r" % mode)
    print(
        "ready graphyte=%s python=%s" % (version("graphyte"), sys.version.split()[0]),
        flush=True,
    )
    if sys.stdin.readline().strip() != "go":
        sys.exit("expected 'go'")
    send = sender.send
    start = time.perf_counter()
    for i in range(count):
        send(names[i & 1023], i)
    seconds = time.perf_counter() - start
    print("result seconds=%.6f count=%d" % (seconds, count), flush=True)
    if mode == "interval":
        sys.stdin.readline()  # "stop", once the drain has seen every line
        sender.stop()


if __name__ == "__main__":
    main()

"""Serve the metrics of :mod:`anonvma.fleet.metrics` over HTTP, or write node_exporter textfiles.

``--listen HOST:PORT`` serves ``/metrics`` with ``prometheus_client``'s server until SIGINT or
SIGTERM. ``--textfile PATH`` writes the text exposition format for node_exporter's textfile
collector (which reads ``*.prom`` files in its ``--collector.textfile.directory``), through a
temporary file and a rename so a scrape never sees half a file; once, or every ``--interval``.
"""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType
from typing import Callable, Optional, Tuple

from prometheus_client import CollectorRegistry, generate_latest, start_http_server

from anonvma.fleet.metrics import MemoryCollector
from anonvma.procmaps.files import write_atomically


def parse_listen(text: str) -> Tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` (every interface) or ``[::1]:PORT`` -> (host, port).

    :raises ValueError: no port, or not a number in 0..65535.
    """
    host, colon, port = text.rpartition(":")
    if not colon or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"--listen wants HOST:PORT (e.g. 127.0.0.1:9101), not {text!r}")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def registry_for(collector: MemoryCollector) -> CollectorRegistry:
    """A registry of its own holding only this collector (no process-wide default registry)."""
    registry = CollectorRegistry()
    registry.register(collector)
    return registry


def serve(collector: MemoryCollector, listen: str,
          ready: Callable[[str], None] = lambda _: None) -> int:
    """Serve ``/metrics`` on ``listen`` until SIGINT/SIGTERM; ``ready`` gets the URL once listening.

    :raises OSError: the address cannot be bound (in use, not local).
    """
    host, port = parse_listen(listen)
    server, thread = start_http_server(port, host, registry=registry_for(collector))
    stop = threading.Event()

    def on_signal(signum: int, frame: Optional[FrameType]) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        bound_host, bound_port = server.server_address[:2]
        ready(f"http://{_url_host(str(bound_host))}:{bound_port}/metrics")
        while not stop.wait(3600):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.shutdown()
        server.server_close()
        thread.join()
    return 0


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def write_textfile(collector: MemoryCollector, path: str) -> int:
    """Scrape once and write ``path`` atomically; return the number of bytes written."""
    data = generate_latest(registry_for(collector))
    write_atomically(path, data)
    return len(data)


def textfile_loop(collector: MemoryCollector, path: str, interval: Optional[float],
                  report: Callable[[str], None] = lambda _: None) -> int:
    """Write ``path`` once, or every ``interval`` s until SIGINT/SIGTERM."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    try:
        while True:
            started = time.monotonic()
            size = write_textfile(collector, path)
            report(f"wrote {size} bytes to {path}")
            if interval is None or stop.wait(max(0.0, interval - (time.monotonic() - started))):
                return 0
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)

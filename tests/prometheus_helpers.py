"""A real Prometheus server for the export tests: found, or unpacked from Debian's package.

``prometheus`` and ``promtool`` are taken from PATH; else from the cache
(``${XDG_CACHE_HOME:-~/.cache}/anonvma/prometheus/usr/bin``); else Debian's ``prometheus``
package is fetched with ``apt-get download`` and unpacked there with ``dpkg-deb -x`` (no
root, no service installed or started). Tests skip, naming what is missing, when none works.
Also runnable: ``python tests/prometheus_helpers.py`` fetches it (scripts/test.sh does).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "anonvma" / "prometheus"


def _cached() -> Optional[Tuple[str, str]]:
    on_path = shutil.which("prometheus"), shutil.which("promtool")
    if all(on_path):
        return on_path  # type: ignore[return-value]
    unpacked = CACHE / "usr" / "bin" / "prometheus", CACHE / "usr" / "bin" / "promtool"
    if all(os.access(p, os.X_OK) for p in unpacked):
        return str(unpacked[0]), str(unpacked[1])
    return None


def fetch() -> Tuple[Optional[Tuple[str, str]], str]:
    """(prometheus, promtool) paths, fetching Debian's package if needed; or None and why not."""
    found = _cached()
    if found:
        return found, ""
    if not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
        return None, "no `prometheus` on PATH and no apt-get/dpkg-deb to fetch Debian's package"
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        got = subprocess.run(["apt-get", "download", "prometheus"], cwd=tmp, capture_output=True,
                             text=True, timeout=600, check=False)
        debs = glob.glob(os.path.join(tmp, "prometheus_*.deb"))
        if got.returncode != 0 or not debs:
            why = (got.stderr.strip().splitlines() or ["no .deb"])[-1]
            return None, f"no `prometheus` on PATH and `apt-get download prometheus` failed: {why}"
        subprocess.run(["dpkg-deb", "-x", debs[0], str(CACHE)], check=True, timeout=300)
    found = _cached()
    return (found, "") if found else (None, "Debian's prometheus package has no usr/bin/prometheus")


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str, timeout: float = 5) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - loopback only
        return bytes(r.read())


def wait_for(what: str, probe: Any, timeout: float, proc: Optional[subprocess.Popen] = None) -> Any:  # type: ignore[type-arg]
    """Call ``probe`` until it returns something true (errors count as not yet)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: the process exited ({proc.returncode})")
        try:
            value = probe()
            if value:
                return value
        except OSError as err:
            last = err
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout} s (last: {last})")


@contextlib.contextmanager
def prometheus_server(binary: str, scrape: str, workdir: Path) -> Iterator[str]:
    """Prometheus scraping ``scrape`` (host:port) every second; yields its base URL."""
    port = free_port()
    config = workdir / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                      "scrape_configs:\n  - job_name: anonvma\n    static_configs:\n"
                      f"      - targets: ['{scrape}']\n")
    log = open(workdir / "prometheus.log", "wb")
    proc = subprocess.Popen([binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for("prometheus ready", lambda: http_get(f"{base}/-/ready"), 60, proc)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@contextlib.contextmanager
def exporter(*argv: str) -> Iterator[str]:
    """``anonvma export --listen`` on a free loopback port with ``argv``, once it serves; yields
    its ``host:port``; on leaving, SIGTERM must stop it cleanly (exit 0)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "anonvma", "export", "--listen", f"127.0.0.1:{port}",
                             *argv], stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        assert proc.stderr.readline().startswith(f"serving http://127.0.0.1:{port}/metrics")
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0  # SIGTERM is a clean stop
        if proc.stderr is not None:
            proc.stderr.close()


def query(base: str, promql: str) -> List[Dict[str, Any]]:
    """The result vector of an instant query through Prometheus's HTTP API."""
    doc = json.loads(http_get(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql})))
    assert doc["status"] == "success", doc
    return list(doc["data"]["result"])


if __name__ == "__main__":
    paths, reason = fetch()
    print(" ".join(paths) if paths else reason, file=sys.stdout if paths else sys.stderr)
    sys.exit(0 if paths else 1)

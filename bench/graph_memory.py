"""Peak memory of `sync` and of one cycle of `run` over the largest delta pages Graph may send.

Two Microsoft 365 pairs; a scripted Graph and authority in another process answers each pair's
calendarView delta with two pages of about 15.3 MiB (48,000 small events each, or
$BENCH_PER_PAGE larger ones, dated outside the window so that nothing is written). The CLI runs
as a child process; the whole process tree's RSS is sampled from /proc every 20 ms.
Usage: .venv/bin/python -m bench.graph_memory [dry-run|sync|run ...]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

REPO = Path(__file__).resolve().parent.parent
TENANT = "5f0e2a4c-1b7d-4c3e-9a8f-2d6b1e0c7a93"
CLIENT_ID = "9a1c3e5f-7b2d-4f6a-8c0e-1d3b5f7a9c2e"
SECRET = "bench-client-secret"  # a test credential for a local server
PER_PAGE = int(os.environ.get("BENCH_PER_PAGE", "48000"))  # events per page of ~15.3 MiB
PAD = max(0, (15_950_000 // PER_PAGE) - 334)  # bytes added to each event to keep that size
USERS = ("maria@agency.org", "ana@agency.org")
PHONES = tuple(u.replace("@", "-phone@") for u in USERS)


def page(number: int, base: str, path: str) -> bytes:
    """One delta page of small events in the year 2190 (parsed and mapped, never written)."""
    events = [{"@odata.type": "#microsoft.graph.event", "@odata.etag": f'W/"e{number}-{i}"',
               "id": f"AAMkAD{number:02d}{i:08d}" + "x" * 28, "subject": "s" + "p" * PAD,
               "type": "singleInstance", "showAs": "busy",
               "start": {"dateTime": "2190-01-01T10:00:00.0000000", "timeZone": "UTC"},
               "end": {"dateTime": "2190-01-01T11:00:00.0000000", "timeZone": "UTC"}}
              for i in range(PER_PAGE)]
    link = ("@odata.nextLink", f"{base}{path}?$skiptoken=2") if number == 1 else (
        "@odata.deltaLink", f"{base}{path}?$deltatoken=d")
    return json.dumps({"@odata.context": "x", "value": events, link[0]: link[1]}).encode()


class Graph(BaseHTTPRequestHandler):
    """Just enough of Graph and the authority for two pairs."""

    protocol_version = "HTTP/1.1"
    pages: ClassVar[dict[tuple[str, int], bytes]] = {}

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self.answer()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.answer()

    def send(self, body: Any) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def answer(self) -> None:
        parts = urlsplit(self.path)
        base = f"http://{self.headers['Host']}"
        query = parse_qs(parts.query)
        if parts.path.endswith("openid-configuration"):
            self.send({"token_endpoint": f"https://{self.headers['Host']}/{TENANT}/oauth2/v2.0/"
                       "token", "issuer": "x", "authorization_endpoint": "x"})
        elif parts.path.endswith("/token"):
            self.send({"token_type": "Bearer", "expires_in": 3599, "access_token": "t"})
        elif parts.path.endswith("/delta"):
            self.send(self.delta(base, parts.path, query))
        elif parts.path.endswith("/calendars"):
            self.send({"value": [{"id": "CalendarId", "name": "Calendar"},
                                 {"id": "PhoneId", "name": "Appointments"}]})
        elif parts.path.endswith("/events") or parts.path.count("/") == 3:
            self.send({"id": str(uuid.uuid5(uuid.NAMESPACE_URL, parts.path)), "value": []})
        else:
            self.send({"value": []})

    def delta(self, base: str, path: str, query: dict[str, list[str]]) -> bytes:
        number = 2 if "$skiptoken" in query else 1
        if "$deltatoken" in query:
            return json.dumps({"value": [], "@odata.deltaLink": f"{base}{path}?$deltatoken=d"}
                              ).encode()
        key = (path, number)
        if key not in self.pages:
            self.pages[key] = page(number, base, path)
        return self.pages[key]


def serve() -> None:
    """The server, in its own process (its pages must not count in the measured tree)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Graph)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"http://127.0.0.1:{server.server_address[1]}/", flush=True)
    time.sleep(3600)


def config(root: Path, url: str) -> dict[str, str]:
    """Two pairs on one account; the environment the CLI needs."""
    (root / "credentials").mkdir(mode=0o700)
    (root / "credentials" / "graph-app").write_text(SECRET, encoding="utf-8")
    text = (f'[service]\nstate_dir = "{root / "state"}"\ninterval = "1h"\n\n'
            f'[accounts.agency]\nkind = "microsoft365"\ntenant_id = "{TENANT}"\n'
            f'client_id = "{CLIENT_ID}"\nclient_credential = "graph-app"\n'
            f'graph_url = "{url}v1.0/"\nauthority = "{url}"\n')
    for user, phone in zip(USERS, PHONES, strict=True):
        text += (f'\n[[pairs]]\nname = "{user.split("@")[0]}"\naccount = "agency"\n'
                 f'source = "{user}/Calendar"\ntarget = "{phone}/Appointments"\n')
    (root / "config.toml").write_text(text, encoding="utf-8")
    (root / "config.toml").chmod(0o600)
    return {**os.environ, "CALENDAR_SANITIZER_CONFIG": str(root / "config.toml"),
            "CREDENTIALS_DIRECTORY": str(root / "credentials")}


def tree_rss_kib(root: int) -> int:
    """The summed RSS of `root` and its descendants."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            status = (entry / "status").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat[1])
        rss[int(entry.name)] = next((int(line.split()[1]) for line in status.splitlines()
                                     if line.startswith("VmRSS:")), 0)
    total = 0
    for pid, kib in rss.items():
        walk = pid
        while walk > 1 and walk != root:
            walk = parents.get(walk, 0)
        total += kib if walk == root else 0
    return total


def measure(command: str) -> None:
    server = subprocess.Popen([sys.executable, "-m", "bench.graph_memory", "serve"],
                              stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert server.stdout is not None
    url = server.stdout.readline().strip()
    try:
        with tempfile.TemporaryDirectory() as temp:
            root = Path(temp)
            env = config(root, url)
            args = ["sync", "--dry-run"] if command == "dry-run" else [command]
            proc = subprocess.Popen([sys.executable, "-m", "sanitizer", *args], env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=REPO)
            peak, status = 0, root / "state" / "status.json"
            while proc.poll() is None:
                peak = max(peak, tree_rss_kib(proc.pid))
                if command == "run" and status.exists():
                    proc.terminate()
                time.sleep(0.02)
            output = (proc.stdout.read() if proc.stdout else b"").decode(errors="replace")
    finally:
        server.kill()
        server.wait()
    lines = [line for line in output.splitlines() if line.startswith("pair ")]
    print(f"{command:8} peak tree RSS {peak / 1024:.0f} MiB  " + " | ".join(lines), flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve()
    else:
        for name in sys.argv[1:] or ("dry-run", "sync", "run"):
            measure(name)

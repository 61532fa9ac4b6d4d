"""Everything that leaves the process goes through one HTTP client (stores/wire.py), so that a
bound added there holds for CalDAV, Graph, the Microsoft authority and Google's token endpoint
alike. msal and google-auth are handed that client; no module of the package opens a
connection with another library."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "sanitizer"
CLIENTS = ("niquests", "requests", "urllib3", "httpx", "urllib.request", "http.client", "aiohttp")
ALLOWED = {
    "stores/wire.py": {"niquests"},  # the one client
}


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return {name for name in names
            if any(name == client or name.startswith(client + ".") for client in CLIENTS)}


def test_only_the_wire_module_imports_an_http_library() -> None:
    found = {str(path.relative_to(PACKAGE)): imported(path) for path in PACKAGE.rglob("*.py")}
    strays = {path: names - ALLOWED.get(path, set())
              for path, names in found.items() if names - ALLOWED.get(path, set())}
    assert strays == {}
    assert found["stores/wire.py"] == {"niquests"}

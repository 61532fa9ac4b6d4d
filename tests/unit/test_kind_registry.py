"""Account kinds live in their own packages under stores/ and are listed once (registry.py):
nothing above stores/ names a kind, compares an account's kind, or tests for a kind's class."""

from __future__ import annotations

import ast
from pathlib import Path

from sanitizer.stores import registry
from sanitizer.stores.caldav.kind import CalDAVAccount
from sanitizer.stores.google.kind import GoogleAccount
from sanitizer.stores.microsoft365.kind import Microsoft365Account

PACKAGE = Path(__file__).resolve().parents[2] / "sanitizer"
KIND_CLASSES = ("Connection", "Account", "Probe", "Kind")  # per-kind classes end in these


def kind_mentions(path: Path, kinds: set[str]) -> list[str]:
    """Comparisons with a kind's name, and isinstance tests for a kind's classes."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Compare):
            for side in (node.left, *node.comparators):
                elements = side.elts if isinstance(side, ast.Tuple | ast.Set | ast.List) else [side]
                if any(isinstance(e, ast.Constant) and e.value in kinds for e in elements):
                    found.append(f"{path.name}:{node.lineno}: compares with a kind's name")
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == "isinstance" and len(node.args) == 2):
            names = {n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)}
            names |= {n.attr for n in ast.walk(node.args[1]) if isinstance(n, ast.Attribute)}
            if any(name.endswith(KIND_CLASSES) and name not in ("Account",) for name in names):
                found.append(f"{path.name}:{node.lineno}: tests for a kind's class")
    return found


def test_nothing_above_stores_compares_account_kinds() -> None:
    kinds = set(registry.KINDS)
    strays = [mention for path in sorted(PACKAGE.rglob("*.py"))
              if "stores" not in path.relative_to(PACKAGE).parts
              for mention in kind_mentions(path, kinds)]
    assert strays == []


def test_the_check_finds_a_comparison(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text('if account.kind == "google":\n    pass\n'
                      "ok = isinstance(c, DavConnection)\n", encoding="utf-8")
    assert len(kind_mentions(sample, {"google"})) == 2


def test_one_registry_line_per_kind() -> None:
    lines = [line for line in Path(registry.__file__).read_text(encoding="utf-8").splitlines()
             if line.startswith("register(")]
    assert len(lines) == 3
    assert {kind.name for kind in registry.KINDS.values()} >= {"caldav", "google",
                                                                "microsoft365"}


def test_each_kind_has_its_own_account_type() -> None:
    assert {CalDAVAccount.kind, GoogleAccount.kind, Microsoft365Account.kind} == {
        "caldav", "google", "microsoft365"}
    assert CalDAVAccount("a", "https://x/", username="u").login == "u"
    assert GoogleAccount("g", "https://x/", service_account_key="k",
                         impersonate="u@x.org").secret_name == "k"

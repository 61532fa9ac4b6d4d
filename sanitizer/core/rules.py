"""Classification: which rule an instance matches decides what reaches the phone (pure).

Rules are tried in order, first match wins; with no match an event is a survivor appointment and is
sanitized with the pair's title. Rules read source text to decide, but nothing they read is copied,
except the SUMMARY under an explicit `keep-title` rule, and only of the agency's own events: anyone
can send an invitation, with any CATEGORIES, whose title names a survivor.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sanitizer.core.model import Action, Instance, Label
from sanitizer.core.policy import Rule

DEFAULT_RULE = "default"


_DOMAIN = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}", re.ASCII)


@dataclass(frozen=True)
class Decision:
    """The outcome of classification; `rule` is a key path, safe to log."""

    action: Action
    title: Label | None
    location: Label | None
    rule: str


def matches(rule: Rule, instance: Instance) -> bool:
    """Every `match_*` key the rule has must match; a rule without any matches everything."""
    if rule.match_categories and not any(
        category.casefold() in rule.match_categories for category in instance.categories
    ):
        return False
    if rule.match_class and instance.klass.upper() not in rule.match_class:
        return False
    return rule.match_summary is None or (
        rule.match_summary.search(instance.summary or "") is not None
    )


def mail_domain(address: str) -> str:
    """The domain of a mail address, lower-cased, or "" if it has none that is valid; the
    address itself is never kept."""
    domain = address.strip().rpartition("@")[2].rstrip(".").lower()
    return domain if "@" in address and _DOMAIN.fullmatch(domain) else ""


def from_agency(instance: Instance, agency_domains: Sequence[str]) -> bool:
    """True unless domains are given and the ORGANIZER is outside them (or unreadable).

    An event without an ORGANIZER is the agency's own; a listed domain covers its subdomains.
    """
    if not agency_domains or instance.organizer_domain is None:
        return True
    domain = instance.organizer_domain
    return bool(domain) and any(domain == d or domain.endswith("." + d) for d in agency_domains)


def classify(instance: Instance, rules: Sequence[Rule],
             agency_domains: Sequence[str] = ()) -> Decision:
    """The first matching rule's decision, or the default: sanitize with the pair's title.

    A `keep-title` rule matching an event from outside `agency_domains` sanitizes it instead.
    """
    for rule in rules:
        if matches(rule, instance):
            if rule.action is Action.KEEP_TITLE and not from_agency(instance, agency_domains):
                return Decision(Action.SANITIZE, None, rule.location, rule.where)
            return Decision(rule.action, rule.title, rule.location, rule.where)
    return Decision(Action.SANITIZE, None, None, DEFAULT_RULE)

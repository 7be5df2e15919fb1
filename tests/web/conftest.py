"""Helpers for the browser pages' tests: clients for the cast, the API tests' trail of known events,
and a small HTML reader for links and elements (the pages are asserted through what a browser sees)."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import pytest
from django.test import Client

from jitaccess.audit.models import AuditEvent

# The API tests' clock and trail of known events serve the pages' tests too.
from tests.audit.conftest import frozen_clock  # noqa: F401  (a fixture)
from tests.audit.test_api import trail  # noqa: F401  (a fixture)


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def auditor(cast: dict[str, Any]) -> Client:
    return signed_in(cast["auditor"])


def recorded(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("seq"))


# --- reading pages ------------------------------------------------------------------------------


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    text: str = ""
    children: list[Element] = field(default_factory=list)


VOID_TAGS = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"})


class _Reader(HTMLParser):
    """Collects every element with its attributes and the text inside it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self._open: list[Element] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {name: value or "" for name, value in attrs})
        self.elements.append(element)
        if self._open:
            self._open[-1].children.append(element)
        if tag not in VOID_TAGS:
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            element = self._open.pop()
            if element.tag == tag:
                break

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.text += data


def elements(response: Any, tag: str | None = None, **attrs: str) -> list[Element]:
    reader = _Reader()
    reader.feed(response.content.decode())
    return [
        element
        for element in reader.elements
        if (tag is None or element.tag == tag) and all(element.attrs.get(k) == v for k, v in attrs.items())
    ]


def text_of(element: Element) -> str:
    return " ".join(element.text.split())


def by_id(response: Any, element_id: str) -> Element:
    found = elements(response, id=element_id)
    assert len(found) == 1, f"{element_id}: {found}"
    return found[0]


def table_rows(response: Any, caption: str) -> list[list[str]]:
    """The body rows of the table with that caption, as the text of their cells."""
    tables = [
        table
        for table in elements(response, "table")
        if any(child.tag == "caption" and text_of(child) == caption for child in table.children)
    ]
    assert len(tables) == 1, caption
    bodies = [child for child in tables[0].children if child.tag == "tbody"]
    return [[text_of(cell) for cell in row.children if cell.tag == "td"] for body in bodies for row in body.children]


def facts_of(response: Any) -> dict[str, str]:
    """Every term of the page's description lists, with its description."""
    terms = [text_of(dt) for dt in elements(response, "dt")]
    return dict(zip(terms, [text_of(dd) for dd in elements(response, "dd")], strict=True))


def link(response: Any, text: str) -> str | None:
    """The href of the one link whose text is ``text``, or None."""
    found = [a.attrs["href"] for a in elements(response, "a") if text_of(a) == text]
    assert len(found) <= 1, found
    return found[0] if found else None


def listed_seqs(response: Any) -> list[int]:
    """The events a page's event table lists, in its order."""
    return [int(text_of(a)) for a in elements(response, "a") if a.attrs.get("aria-label", "").startswith("Event ")]

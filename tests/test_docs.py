"""docs/ stays in step with the code: every public name is documented, links resolve.

* Every name in the ``__all__`` of gearq's public packages appears in docs/ inside code
  (an inline code span or a code block), and in docs/api.md under its own module's section.
* Relative links between docs pages (and to files of the repository) point at files that
  exist, and their ``#anchors`` at headings that exist.
* The Python snippets of the guide pages compile.
"""

from __future__ import annotations

import ast
import importlib
import re
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
API = DOCS / "api.md"
PUBLIC_MODULES = [
    "gearq",
    "gearq.protocol",
    "gearq.net",
    "gearq.client",
    "gearq.worker",
    "gearq.tasks",
    "gearq.server",
    "gearq.testing",
]
# The pages of the user guide (their Python snippets must compile).
GUIDE_PAGES = ["quickstart.md", "guide.md", "multi-server.md", "celery.md", "comparison.md"]
INDEX_MUST_LINK = [
    "quickstart.md",
    "guide.md",
    "tasks.md",
    "worker-runner.md",
    "worker-command.md",
    "admin-commands.md",
    "multi-server.md",
    "wire-format.md",
    "celery.md",
    "comparison.md",
    "api.md",
    "client.md",
    "worker.md",
    "protocol.md",
]

FENCE = re.compile(r"^```.*?^```", re.M | re.S)
INLINE_CODE = re.compile(r"`((?:[^`\n]|\n(?!\n))+)`")  # may wrap, not across paragraphs
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
LINK = re.compile(r"(?<!!)\[[^\]\n]*\]\(([^)\s]+)\)")


def public_names(module_name: str) -> list[str]:
    module = importlib.import_module(module_name)
    names = list(module.__all__)
    assert names, f"{module_name} has an empty __all__"
    return names


def code_identifiers(text: str) -> set[str]:
    """Identifiers written inside code: fenced blocks and inline code spans."""
    found: set[str] = set()
    for block in FENCE.findall(text):
        found.update(IDENTIFIER.findall(block))
    for span in INLINE_CODE.findall(FENCE.sub("", text)):
        found.update(IDENTIFIER.findall(span))
    return found


def doc_pages() -> list[Path]:
    pages = sorted(DOCS.glob("*.md"))
    assert pages, "docs/ has no pages"
    return pages


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_name_is_in_the_docs(module_name: str) -> None:
    documented: set[str] = set()
    for page in doc_pages():
        documented |= code_identifiers(page.read_text(encoding="utf-8"))
    missing = [name for name in public_names(module_name) if name not in documented]
    assert not missing, f"{module_name} exports names that docs/ never mentions: {missing}"


def api_section(module_name: str) -> str:
    """The text of docs/api.md under ``## <module_name>``, up to the next ``## ``."""
    text = API.read_text(encoding="utf-8")
    found = re.search(rf"^## {re.escape(module_name)}\b[^\n]*\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert found, f"docs/api.md has no section '## {module_name}'"
    return found.group(1)


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_api_reference_covers_each_module(module_name: str) -> None:
    documented = code_identifiers(api_section(module_name))
    missing = [name for name in public_names(module_name) if name not in documented]
    assert not missing, f"docs/api.md, section {module_name}, lacks {missing}"


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip())  # links: their text
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: Counter[str] = Counter()
    result: set[str] = set()
    for heading in re.findall(r"^#{1,6} (.+)$", FENCE.sub("", page.read_text("utf-8")), re.M):
        base = slug(heading)
        result.add(base if not seen[base] else f"{base}-{seen[base]}")
        seen[base] += 1
    return result


def broken_links(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    text = INLINE_CODE.sub("", text)
    broken: list[str] = []
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        destination = (page.parent / path_part).resolve() if path_part else page
        if not destination.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            broken.append(f"{target} (no heading #{anchor} in {destination.name})")
    return broken


@pytest.mark.parametrize("page", [p.name for p in sorted(DOCS.glob("*.md"))])
def test_relative_links_resolve(page: str) -> None:
    broken = broken_links(DOCS / page)
    assert not broken, f"docs/{page} has broken links: {broken}"


def test_the_link_checker_catches_a_broken_link(tmp_path: Path) -> None:
    (tmp_path / "b.md").write_text("# Title here\n\n## Some `code` part\n")
    page = tmp_path / "a.md"
    page.write_text(
        "[ok](b.md) [ok](b.md#title-here) [ok](b.md#some-code-part) [web](https://x.org/y)\n"
        "[gone](c.md) [bad anchor](b.md#nope) `[not a link](d.md)`\n"
        "```\n[not a link](e.md)\n```\n"
    )
    assert broken_links(page) == ["c.md (no such file)", "b.md#nope (no heading #nope in b.md)"]


def test_index_links_every_page() -> None:
    linked = {t.partition("#")[0] for t in LINK.findall((DOCS / "index.md").read_text("utf-8"))}
    missing = [page for page in INDEX_MUST_LINK if page not in linked]
    assert not missing, f"docs/index.md does not link {missing}"
    unlisted = [p.name for p in doc_pages() if p.name != "index.md" and p.name not in linked]
    assert not unlisted, f"docs/index.md does not link {unlisted}"


@pytest.mark.parametrize("page", [*GUIDE_PAGES, "api.md"])
def test_python_snippets_compile(page: str) -> None:
    text = (DOCS / page).read_text(encoding="utf-8")
    for block in re.findall(r"^```python\n(.*?)^```", text, re.M | re.S):
        compile(block, f"docs/{page}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def test_only_code_counts_as_mentioning_a_name() -> None:
    text = "App in prose.\n`gearq.tasks.Task(x)` and\n```python\nfrom gearq import group\n```\n"
    found = code_identifiers(text)
    assert {"gearq", "tasks", "Task", "x", "group"} <= found
    assert "App" not in found and "prose" not in found

"""The manual's links: every relative link of the README and docs/ names a file that exists, and every
`#anchor` one of that page's headings, so moving or renaming a page cannot leave a dead link."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation but - and _ dropped, spaces to -."""
    heads = re.findall(r"^#+ (.+)$", page.read_text(), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


def dead_links(page: Path) -> list[str]:
    dead = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"^[a-z]+:", target):
            continue
        path, _, frag = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists() or frag and dest.suffix == ".md" and frag not in anchors(dest):
            dead.append(target)
    return dead


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    assert dead_links(page) == []


def test_a_dead_link_is_found(tmp_path):
    (tmp_path / "b.md").write_text("# Sanity checks, exactly\n")
    page = tmp_path / "a.md"
    page.write_text("[ok](b.md) [ok](b.md#sanity-checks-exactly) [no](c.md) [no](b.md#nope) [web](https://x.org)")
    assert dead_links(page) == ["c.md", "b.md#nope"]

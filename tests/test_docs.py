"""The documentation holds together: every relative link in README.md and docs/
leads to a file (and a heading, where it names one), every page is linked from
the README, and the README stays a guide a newcomer reads in minutes."""

import os
import re

import pytest

from testlib import PROJECT_ROOT

DOCS_DIR = os.path.join(PROJECT_ROOT, "docs")
PAGES = [os.path.join(PROJECT_ROOT, "README.md")] + sorted(
    os.path.join(DOCS_DIR, name) for name in os.listdir(DOCS_DIR) if name.endswith(".md")
)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
README_MOST_LINES = 300


def _prose(path):
    """The page without its fenced code blocks (no links there)."""
    with open(path) as handle:
        text = handle.read()
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def _anchors(path):
    """GitHub's anchors of a page's headings: lower case, punctuation dropped,
    spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", _prose(path), flags=re.M)
    slugs = set()
    for heading in headings:
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        slugs.add(slug)
    return slugs


def relative_links(path):
    for target in LINK.findall(_prose(path)):
        if not re.match(r"^[a-z]+:", target):
            yield target


def test_anchors_follow_githubs_rule():
    """The slug rule on hand-made headings (the check below relies on it)."""
    page = os.path.join(DOCS_DIR, "models.md")
    assert "adding-a-model-family" in _anchors(page)
    assert "the-families" in _anchors(page)


@pytest.mark.parametrize("page", PAGES, ids=os.path.basename)
def test_every_relative_link_resolves(page):
    broken = []
    for target in relative_links(page):
        file_part, _, anchor = target.partition("#")
        linked = (
            os.path.normpath(os.path.join(os.path.dirname(page), file_part)) if file_part else page
        )
        if not os.path.exists(linked):
            broken.append(f"{target}: no such file")
        elif anchor and linked.endswith(".md") and anchor not in _anchors(linked):
            broken.append(f"{target}: no heading #{anchor}")
    assert not broken, broken


def test_the_readme_is_a_guide_that_lists_every_page():
    readme = os.path.join(PROJECT_ROOT, "README.md")
    with open(readme) as handle:
        assert len(handle.readlines()) <= README_MOST_LINES
    linked = {os.path.normpath(target.partition("#")[0]) for target in relative_links(readme)}
    pages = {os.path.join("docs", os.path.basename(page)) for page in PAGES[1:]}
    assert pages <= linked, pages - linked

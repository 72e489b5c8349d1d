"""The README is a front page: at most 300 lines, every link into the documentation leads to
a page (and section) of the documentation's sources, and the headline numbers of its table of
reproductions are those of the user-guide sections it links to.

The documentation's sources are the reStructuredText pages under ``docs/``; a link
``docs/guide/PAGE.rst#ANCHOR`` (or ``.html``) names the page ``docs/guide/PAGE.rst`` and a
section of it, whose anchor is the id docutils (and so Sphinx, and GitHub's rendering of the
page) gives the section's title, or an explicit label (``.. _label:``) on the page.
"""

import re
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"

LINK = re.compile(r"!?\[([^\]]*)\]\(([^)\s]+)\)")
NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:e[-+]?\d+)?(?![\w]|\.\d)")
ADORNMENT = re.compile(r"^([=\-~^\"'`#*+<>:._])\1+\s*$")


def make_id(title):
    """docutils' ``nodes.make_id`` for ASCII titles: the anchor of a section."""
    text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    text = re.sub(r"[^a-z0-9]+", "-", " ".join(text.lower().split()))
    return re.sub(r"^[-0-9]+|-+$", "", text)


def sections(page):
    """The sections of a reStructuredText page: (anchors, level, text), in order.

    ``anchors`` holds the id of the title and the labels just above it; ``text`` runs from
    the title to the next title of the same or a higher level."""
    lines = page.read_text().splitlines()
    heads, levels = [], []
    for k in range(1, len(lines)):
        title, under = lines[k - 1], lines[k]
        if (ADORNMENT.match(under) and title.strip() and not ADORNMENT.match(title)
                and len(under.rstrip()) >= len(title.rstrip()) and not title.startswith(" ")):
            char = under[0]
            if char not in levels:
                levels.append(char)
            anchors = {make_id(title)}
            j = k - 2
            while j >= 0 and (not lines[j].strip() or lines[j].startswith(".. _")):
                if lines[j].startswith(".. _"):
                    anchors.add(lines[j][4:].rstrip(":").strip())
                j -= 1
            heads.append((k - 1, anchors, levels.index(char)))
    found = []
    for n, (start, anchors, level) in enumerate(heads):
        end = next((s for s, _, lev in heads[n + 1:] if lev <= level), len(lines))
        found.append((anchors, level, "\n".join(lines[start:end])))
    return found


def readme_links():
    return [(text, target) for text, target in LINK.findall(README.read_text())
            if not re.match(r"^[a-z]+:", target)]


def docs_page(target):
    """The source page a ``docs/...`` link names, and its anchor ('' for none)."""
    path, _, anchor = target.partition("#")
    page = ROOT / path
    if page.suffix == ".html":
        page = page.with_suffix(".rst")
    return page, anchor


def test_readme_is_at_most_300_lines():
    lines = README.read_text().splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines"


def test_every_relative_link_and_image_of_the_readme_exists():
    links = readme_links()
    assert len(links) > 20, links
    for text, target in links:
        path = target.partition("#")[0]
        if not path.startswith("docs/guide/"):
            assert (ROOT / path).exists(), f"README links to {target!r} ({text!r}): no such file"


def test_every_docs_link_of_the_readme_names_a_page_and_section_of_the_sources():
    docs_links = [(text, t) for text, t in readme_links() if t.startswith("docs/guide/")]
    assert len(docs_links) > 15, docs_links
    for text, target in docs_links:
        page, anchor = docs_page(target)
        assert page.suffix == ".rst" and page.is_file(), (
            f"README links to {target!r} ({text!r}): no page {page.relative_to(ROOT)}")
        if anchor:
            anchors = set().union(*(a for a, _, _ in sections(page)))
            assert anchor in anchors, (
                f"README links to {target!r}: {page.name} has no section {anchor!r} "
                f"(its sections: {sorted(anchors)})")


def test_every_docs_link_names_a_page_in_the_guide_toctree():
    toctree = (DOCS / "guide" / "index.rst").read_text().split()
    for _, target in readme_links():
        if target.startswith("docs/guide/"):
            page, _ = docs_page(target)
            assert page.stem in toctree, f"{page.name} is not in docs/guide/index.rst"


def reproduction_rows():
    """The README's table of reproductions: (experiment, command, headline, link)."""
    text = README.read_text()
    table = text[text.index("## What it reproduces"):].split("\n## ")[0]
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in table.splitlines() if line.startswith("|")]
    assert rows[0] == ["Paper", "Command", "Headline", "Detail"], rows[0]
    return [(row[0], row[1].strip("`"), row[2], LINK.search(row[3]).group(2))
            for row in rows[2:]]


def test_the_table_of_reproductions_has_a_row_per_experiment_of_the_paper():
    experiments = [row[0] for row in reproduction_rows()]
    for name in ["Fig. 3a-f", "Fig. 3b", "Fig. 3g-k", "Fig. 4a", "Fig. 4b-d", "Suppl. Fig. 1",
                 "Timescales"]:
        assert any(name in experiment for experiment in experiments), (name, experiments)


@pytest.mark.parametrize("row", reproduction_rows(), ids=lambda row: row[0])
def test_headline_numbers_and_command_are_those_of_the_linked_section(row):
    """Each headline number of the README is a number of the section that holds its detail
    (which names the script or run that printed it), and so is the command."""
    experiment, command, headline, link = row
    page, anchor = docs_page(link)
    found = [text for anchors, _, text in sections(page) if anchor in anchors]
    assert len(found) == 1, f"{experiment}: {link!r} names no one section of {page.name}"
    section = found[0]
    assert command in section, f"{experiment}: {command!r} not in {page.name}#{anchor}"
    numbers = NUMBER.findall(headline)
    assert numbers, headline
    in_section = set(NUMBER.findall(section))
    missing = [n for n in numbers if n not in in_section]
    assert not missing, f"{experiment}: {missing} are not numbers of {page.name}#{anchor}"


def test_the_readme_test_command_is_what_ci_runs():
    text = README.read_text()
    commands = re.findall(r"```bash\n(.*?)\n```", text, re.S)
    test_command = next(c for c in commands if "pytest" in c)
    pytest_part = test_command.split("&&")[-1].strip()
    assert pytest_part == "python -m pytest", test_command
    # CI runs it as written, under `timeout` at most (a bound on a hung run).
    ci_lines = [re.sub(r"^timeout( --?[a-z-]+=?\S*)* \d+ ", "", line)
                for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert pytest_part in ci_lines


USER_FACING = [README, DOCS / "index.rst", *sorted((DOCS / "guide").glob("*.rst")),
               ROOT / "examples" / "README.rst", *sorted((ROOT / "examples").glob("*.py"))]
WORKFLOW = re.compile(r"\bissues? \d+|\bsessions?\b|\bREADME's section\b", re.IGNORECASE)


@pytest.mark.parametrize("path", USER_FACING, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_issue_numbers_or_workflow_words_in_user_facing_text(path):
    found = [(k + 1, line.strip()) for k, line in enumerate(path.read_text().splitlines())
             if WORKFLOW.search(line)]
    assert not found, found

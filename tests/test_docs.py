"""The README and the documentation pages hold together.

For README.md and every page of ``docs/``: every ``avscene`` invocation in their code names a
real sub-command and only options that sub-command accepts; the make targets and benchmark names
they give are real; every relative link points to an existing file (and, with ``#anchor``, to a
heading of it). Every page of ``docs/`` is in the ``nav`` of ``mkdocs.yml``. No page speaks of
issues or sessions (the bookkeeping of the project, not of its users)."""

import pathlib
import re
import unicodedata

import pytest
import yaml

from benchmarks.__main__ import MODULES
from pipelines.commands.cli import COMMANDS, build_parser

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = (ROOT / "README.md").read_text(encoding="utf-8")
#: Pages checked: README.md and docs/*.md, by path relative to the repository.
PAGES = ["README.md"] + sorted(str(path.relative_to(ROOT)) for path in DOCS.rglob("*.md"))
FENCE = r"^[ \t]*```[^\n]*\n(.*?)^[ \t]*```"  # fences may be indented (in list items)


def read(page):
    return (ROOT / page).read_text(encoding="utf-8")


def code_fragments(markdown):
    """Fenced block lines (continuations joined) and inline code spans of ``markdown``."""
    fenced = re.findall(FENCE, markdown, flags=re.S | re.M)
    prose = re.sub(FENCE, "", markdown, flags=re.S | re.M)
    lines = [line for block in fenced for line in block.replace("\\\n", " ").splitlines()]
    return lines + re.findall(r"`([^`\n]+)`", prose)


def invocations(fragments):
    """(sub-command, options) for each ``avscene [-v|-q] COMMAND ...`` in the fragments."""
    found = []
    for fragment in fragments:
        for match in re.finditer(r"(?:^|[\s$/(])avscene (?:-[vq] )?([a-z]+)([^|;&#]*)", fragment):
            command, rest = match.group(1), match.group(2).split(" avscene ")[0]
            found.append((command, re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", rest)))
    return found


def subparser_options():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    return {name: set(sub._option_string_actions) for name, sub in subparsers.items()}


# -- avscene invocations ------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES)
def test_avscene_invocations_are_real(page):
    options = subparser_options()
    found = invocations(code_fragments(read(page)))
    unknown = sorted({command for command, _ in found} - set(options))
    assert not unknown, f"{page} names sub-commands that do not exist: {unknown}"
    bad = sorted(
        {
            (command, flag)
            for command, flags in found
            for flag in flags
            if flag not in options[command]
        }
    )
    assert not bad, f"{page} passes options the commands do not accept: {bad}"


def test_readme_names_every_command_and_the_pages_show_many():
    in_readme = {command for command, _ in invocations(code_fragments(README))}
    assert in_readme == {name for name, _, _ in COMMANDS}, "README's command table is incomplete"
    total = sum(len(invocations(code_fragments(read(page)))) for page in PAGES)
    assert total > 50, "the README and the docs should show many commands"


def test_invocation_parser_catches_a_wrong_option():
    found = invocations(["avscene train s.zarr --feature x", "avscene bogus --x"])
    assert found == [("train", ["--feature"]), ("bogus", ["--x"])]
    assert "--feature" not in subparser_options()["train"]
    markdown = "1. step:\n\n   ```\n   avscene scan ROOT \\\n       --jsn\n   ```\n\nthen `avscene info S --json`\n"
    assert invocations(code_fragments(markdown)) == [("scan", ["--jsn"]), ("info", ["--json"])]


# -- make targets and benchmarks ----------------------------------------------------------------


def make_targets():
    return set(re.findall(r"^([a-z][a-z0-9-]*):", (ROOT / "Makefile").read_text(), flags=re.M))


@pytest.mark.parametrize("target", ["demo", "test", "install", "bench", "test-slow", "docs"])
def test_readme_make_targets_exist(target):
    assert f"make {target}" in README
    assert target in make_targets()


@pytest.mark.parametrize("page", PAGES)
def test_make_targets_named_exist(page):
    named = {
        match
        for fragment in code_fragments(read(page))
        for match in re.findall(r"(?:^|[\s(])make ([a-z][a-z0-9-]*)", fragment)
    }
    missing = sorted(named - make_targets())
    assert not missing, f"{page} names make targets that the Makefile lacks: {missing}"


@pytest.mark.parametrize("page", PAGES)
def test_benchmark_names_exist(page):
    text = read(page)
    named = set(re.findall(r"python -m benchmarks ([a-z0-9]+)", text))
    unknown = sorted(named - {name for name, _ in MODULES})
    assert not unknown, f"{page} names benchmarks that do not exist: {unknown}"
    modules = set(re.findall(r"python -m (benchmarks\.[a-z0-9_]+)", text))
    unknown = sorted(modules - {module for _, module in MODULES})
    assert not unknown, f"{page} names benchmark modules that do not exist: {unknown}"


def test_the_benchmarks_are_documented():
    text = "\n".join(read(page) for page in PAGES)
    assert {name for name, _ in MODULES} <= set(
        re.findall(r"python -m benchmarks ([a-z0-9]+)", text)
    )


# -- the mkdocs site ----------------------------------------------------------------------------


def nav_pages(nav):
    """Page paths of an mkdocs ``nav`` (nested lists and {title: page} mappings)."""
    if isinstance(nav, str):
        return [] if "://" in nav else [nav]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in nav_pages(value)]
    return [page for item in nav for page in nav_pages(item)]


def test_every_page_is_in_the_nav():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    assert config["docs_dir"] == "docs"
    listed = nav_pages(config["nav"])
    pages = sorted(str(path.relative_to(DOCS)) for path in DOCS.rglob("*.md"))
    assert sorted(set(pages) - set(listed)) == [], "pages missing from the mkdocs nav"
    assert sorted(set(listed) - set(pages)) == [], "the mkdocs nav lists pages that do not exist"
    assert len(listed) == len(set(listed)), "the mkdocs nav lists a page twice"


# -- links --------------------------------------------------------------------------------------


def slug_mkdocs(heading):
    """Python-Markdown's toc slug (what mkdocs uses for heading ids)."""
    text = unicodedata.normalize("NFKD", heading).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def slug_github(heading):
    """GitHub's heading anchor (what a link from the README lands on)."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def headings(markdown):
    """Heading texts outside code fences, inline markup removed."""
    prose = re.sub(FENCE, "", markdown, flags=re.S | re.M)
    found = re.findall(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", prose, flags=re.M)
    return [re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", text) for text in found]


def anchors(markdown, slug, separator):
    """Every heading anchor of a page; repeated headings get numbered suffixes."""
    seen, result = {}, set()
    for text in headings(markdown):
        base = slug(text)
        result.add(base if base not in seen else f"{base}{separator}{seen[base]}")
        seen[base] = seen.get(base, 0) + 1
    return result


def relative_links(markdown):
    """Targets of inline links, images and reference definitions, outside code."""
    prose = re.sub(FENCE, "", markdown, flags=re.S | re.M)
    prose = re.sub(r"`[^`\n]+`", "", prose)
    targets = re.findall(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", prose)
    targets += re.findall(r"^\s*\[[^\]]+\]:\s*(\S+)", prose, flags=re.M)
    return [target for target in targets if not re.match(r"[a-z][a-z0-9+.-]*:", target)]


def test_link_finder_and_slugs():
    text = 'See [a](docs/x.md#b-c), ![i](img.png "t"), [web](https://e.org), `[no](code.md)`.\n'
    assert relative_links(text) == ["docs/x.md#b-c", "img.png"]
    assert (
        slug_mkdocs("Fusion, and the literature's systems: `x`")
        == "fusion-and-the-literatures-systems-x"
    )
    assert slug_github("Extraction: dataset -> store") == "extraction-dataset---store"
    assert anchors("# A\n```\n# not a heading\n```\n## A\n", slug_mkdocs, "_") == {"a", "a_1"}


@pytest.mark.parametrize("page", PAGES)
def test_relative_links_point_to_existing_files_and_headings(page):
    source = ROOT / page
    slug, separator = (slug_github, "-") if page == "README.md" else (slug_mkdocs, "_")
    broken = []
    for link in relative_links(read(page)):
        path, _, anchor = link.partition("#")
        target = (source.parent / path).resolve() if path else source
        if not target.is_file():
            broken.append(
                f"{link} (no file {target.relative_to(ROOT) if ROOT in target.parents else target})"
            )
        elif not page.startswith("docs/") or DOCS in target.parents:
            if (
                anchor
                and target.suffix == ".md"
                and anchor not in anchors(target.read_text(encoding="utf-8"), slug, separator)
            ):
                broken.append(f"{link} (no heading #{anchor} in {target.relative_to(ROOT)})")
        else:
            broken.append(f"{link} (outside docs/: the mkdocs site cannot link to it)")
    assert not broken, f"{page} has broken relative links: {broken}"


#: Words about how the project is managed, which a user's page has no use for.
BOOKKEEPING = re.compile(r"\b(issues?|sessions?)\b", re.I)


@pytest.mark.parametrize("page", PAGES)
def test_pages_speak_of_the_product_not_of_issues_or_sessions(page):
    text = re.sub(r"\(https?://[^)\s]+\)", "", read(page))  # link targets (a tracker's URL)
    found = [line for line in text.splitlines() if BOOKKEEPING.search(line)]
    assert not found, f"{page}: {found[:3]}"


def test_the_bookkeeping_check_catches_a_mention():
    assert BOOKKEEPING.search("the tests of issue 15") and BOOKKEEPING.search("This session ran")
    assert not BOOKKEEPING.search("impressionist sessional tissues")


def security_table_tests():
    """(row, file, test or None) of every test the security page's "Hostile input at a glance"
    table names: ``tests/...py::name``, ``file.py::name`` (in ``tests/security/``) and
    ``::name`` (in the file named before it in the same cell)."""
    page = read("docs/security.md")
    table = page.split("## Hostile input at a glance", 1)[1].split("\n## ", 1)[0]
    found = []
    for row in (
        line for line in table.splitlines() if line.startswith("| ") and "---" not in line
    ):
        cell = row.rstrip(" |").rsplit(" | ", 1)[-1]
        current = None
        for reference in re.findall(r"`([^`]+)`", cell):
            where, _, name = reference.partition("::")
            if where:
                current = ROOT / (where if "/" in where else f"tests/security/{where}")
            found.append((row[:40], current, name.split("[")[0] or None))
    return found


def test_the_security_table_names_tests_that_exist():
    found = security_table_tests()
    assert len(found) >= 40
    for row, path, name in found:
        assert path is not None and path.exists(), (row, path)
        if name:
            assert re.search(rf"^def {re.escape(name)}\(", path.read_text(), flags=re.M), (
                row,
                path.name,
                name,
            )

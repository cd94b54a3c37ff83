"""Compiled templates are kept between runs (auditor/outputs/render.py, bytecode_cache): a report rendered from the
cache is the very report compiled afresh; a damaged entry or a directory that is not safely ours is no cache,
never an error; and the templates of a batch's threads are compiled once."""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from jinja2 import Environment

from auditor.outputs import render
from auditor.outputs.render import render_html, render_markdown

GOLDEN = Path(__file__).parent / "data" / "golden_demo_run.json"


@pytest.fixture
def run() -> dict:
    run = json.loads(GOLDEN.read_text())
    run["stats"] = {"http_requests": 26, "hogql_queries": 1, "retries": 0, "wall_seconds": 0.4,
                    "gather_seconds": 0.3, "request_depth": 3}  # the golden file masks them
    return run


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """jinja2's per-user cache directory, inside this test's own temp directory; fresh environments before and
    after."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    render.environment.cache_clear()
    yield tmp_path / f"_jinja2-cache-{os.getuid()}"
    render.environment.cache_clear()


def compiles(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the templates compiled from source from now on."""
    compiled: list[str] = []
    original = Environment.compile

    def counting(self, source, name=None, filename=None, raw=False, defer_init=False):  # type: ignore[no-untyped-def]
        compiled.append(name)
        return original(self, source, name, filename, raw, defer_init)

    monkeypatch.setattr(Environment, "compile", counting)
    return compiled


def test_a_report_from_the_cache_is_the_report_compiled_afresh(run, cache_home, monkeypatch):
    compiled = compiles(monkeypatch)
    fresh = render_html(run), render_markdown(run)
    assert compiled == ["report.html.j2", "report.md.j2"]
    entries = sorted(p.name for p in cache_home.iterdir())
    assert len(entries) == 2 and all(name.startswith("posthog-auditor-") for name in entries)
    assert oct(cache_home.stat().st_mode & 0o777) == "0o700"

    render.environment.cache_clear()  # a new process, as far as the templates know
    assert (render_html(run), render_markdown(run)) == fresh
    assert compiled == ["report.html.j2", "report.md.j2"]  # nothing compiled the second time


def test_html_and_markdown_never_share_an_entry(run, cache_home):
    render_html(run)
    render_markdown(run)
    prefixes = {p.name.split("-")[2] for p in cache_home.iterdir()}
    assert len(prefixes) == 2  # the flavour is in the fingerprint: one's code is never loaded as the other's


def test_a_damaged_entry_is_compiled_again(run, cache_home, monkeypatch):
    fresh = render_html(run)
    for entry in cache_home.iterdir():
        entry.write_bytes(entry.read_bytes()[:200] + b"\x00garbage")
    render.environment.cache_clear()
    compiled = compiles(monkeypatch)
    assert render_html(run) == fresh
    assert compiled == ["report.html.j2"]


def test_a_cache_directory_that_is_not_safely_ours_is_not_used(run, cache_home, monkeypatch):
    cache_home.write_text("not a directory")  # where jinja2 would make its 0700 directory
    compiled = compiles(monkeypatch)
    assert render.environment().bytecode_cache is None
    first = render_html(run)
    render.environment.cache_clear()
    assert render_html(run) == first
    assert compiled == ["report.html.j2", "report.html.j2"]


def test_threads_finishing_together_compile_a_template_once(run, cache_home, monkeypatch):
    compiled = compiles(monkeypatch)
    start = threading.Barrier(8)
    pages: list[str] = []

    def one() -> None:
        start.wait()
        pages.append(render_html(run))

    threads = [threading.Thread(target=one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert compiled == ["report.html.j2"]
    assert len(set(pages)) == 1 and len(pages) == 8

"""The search page at `/`: served by the app (fast tier), and driven in headless Chromium against a
real `findling serve` process with the real model (`-m model`, also marked `browser`)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.routes import STATIC_DIR
from indexer.settings import Settings
from tests.helpers import FINDLING, ROOT, SEEDS, api_client, assert_error, running_server

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path(os.environ.get("FINDLING_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "test-artifacts"
REAL_MODEL_ENV = {**os.environ, "FINDLING_MODEL": "multilingual-e5-small"}
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

GERMAN = ("Wie viele Zivilisten starben im August?", "184 Zivilisten")
ENGLISH = ("Whom will Biden meet in Washington on Friday?", "Keir Starmer")
# an indexed document that would run script if the page ever parsed document text as HTML; the
# astral characters in front check that offsets are counted in code points, as the API does
MARKUP_FILE = "markup-notes.en.txt"
MARKUP = (
    '\U0001d509\U0001f642 Hostile markup, first <img src=x onerror="window.__xss = 1"> as text. '
    "The wiki page quoted <script>window.__xss = 1; document.title = 'pwned'</script> verbatim "
    "as an example of hostile markup. "
    "The last example was <img src=y onerror=\"document.title = 'pwned'\"> again.\n"
)
MARKUP_QUESTION = "Which hostile markup did the wiki page quote?"


# -- fast tier: the page and its assets are served ------------------------------------------------


@pytest.fixture
def client(hashing_env: Settings) -> Iterator[TestClient]:
    """The app without an index: the page and its assets need none."""
    with api_client(create_app(hashing_env)) as test_client:
        yield test_client


def test_root_serves_the_search_page(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    html = response.text
    for fragment in [
        '<form id="search-form"',
        'role="search"',
        '<label class="search-label" for="q">',
        '<input id="q" name="q" type="search"',
        'role="status"',
        'aria-live="polite"',
        "<header",
        "<main",
        "<footer",
        'src="static/app.js"',
        'href="static/style.css"',
    ]:
        assert fragment in html, fragment
    assert "http://" not in html and "https://" not in html  # nothing from elsewhere


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("app.js", "text/javascript"),
        ("style.css", "text/css"),
        ("favicon.svg", "image/svg+xml"),
        ("index.html", "text/html"),
    ],
)
def test_static_assets_have_content_types(client: TestClient, name: str, content_type: str) -> None:
    response = client.get(f"/static/{name}")
    assert response.status_code == 200
    # older Pythons' mimetypes call JavaScript application/javascript; both are fine
    expected = {content_type, "application/javascript"} if name.endswith(".js") else {content_type}
    assert response.headers["content-type"].split(";")[0] in expected
    assert response.content == (STATIC_DIR / name).read_bytes()


def test_missing_asset_is_a_404_in_the_error_shape(client: TestClient) -> None:
    assert_error(client.get("/static/nope.js"), 404, "not_found")


def test_static_files_ship_as_package_data() -> None:
    # pyproject's package-data glob is `static/*`: it does not reach into subfolders
    assert all(path.is_file() for path in STATIC_DIR.iterdir())
    assert {"index.html", "app.js", "style.css"} <= {p.name for p in STATIC_DIR.iterdir()}


def test_script_renders_document_text_as_text_only() -> None:
    code = re.sub(r"/\*.*?\*/", "", (STATIC_DIR / "app.js").read_text(encoding="utf-8"), flags=re.S)
    for sink in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("]:
        assert sink not in code, sink


def test_openapi_describes_what_the_page_reads(client: TestClient) -> None:
    """app.js shows a mode picker from this enum; it must stay discoverable."""
    parameters = client.get("/openapi.json").json()["paths"]["/search"]["get"]["parameters"]
    by_name = {p["name"]: p for p in parameters}
    assert {"q", "k"} <= set(by_name)
    if "mode" in by_name:
        enums = [s.get("enum") for s in by_name["mode"]["schema"].get("anyOf", [])]
        assert ["dense", "bm25", "hybrid"] in enums
    if "collection" in by_name:  # the page lists them from GET /collections
        assert client.get("/collections").status_code == 200


# -- browser tier: headless Chromium against real servers ----------------------------------------


def _serve(index_dir: Path) -> Iterator[str]:
    """Run `findling serve` on ``index_dir`` with the real model until the generator closes."""
    # uvicorn answers only once lifespan has loaded the model (and index, if any)
    with running_server({**REAL_MODEL_ENV, "FINDLING_INDEX_DIR": str(index_dir)}) as url:
        yield url


@pytest.fixture(scope="module")
def seeded_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """By `findling index`: the default collection holds the seed article and a document full of
    markup, the collection "notes" only the latter."""
    corpus = tmp_path_factory.mktemp("browser-corpus")
    shutil.copytree(SEEDS, corpus / "seeds")
    (corpus / "notes").mkdir()
    (corpus / "notes" / MARKUP_FILE).write_text(MARKUP, encoding="utf-8")
    index_dir = tmp_path_factory.mktemp("browser-index") / "index"
    # relative paths, as people index: sources read "seeds/...txt"
    for arguments in (["seeds", "notes"], ["notes", "--collection", "notes"]):
        done = subprocess.run(
            [str(FINDLING), "index", *arguments, "--index-dir", str(index_dir), "--json"],
            cwd=corpus,
            env=REAL_MODEL_ENV,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr
    return index_dir


@pytest.fixture(scope="module")
def server(seeded_index: Path) -> Iterator[str]:
    yield from _serve(seeded_index)


@pytest.fixture(scope="module")
def empty_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _serve(tmp_path_factory.mktemp("no-index") / "index")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}: the browser tests need it "
            "(`apt-get install chromium`, as .ci/run does, or set FINDLING_CHROMIUM); "
            "they never download a browser"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install -e '.[test]'")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Visit:
    """A browser tab plus what it did: uncaught errors and requests that left localhost."""

    def __init__(self, browser: Browser, **context: Any) -> None:
        self.context = browser.new_context(**context)
        self.context.set_default_timeout(20_000)
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.context.route(re.compile(r"^(?!http://127\.0\.0\.1[:/]).*"), self._block)
        self.page: Page = self.context.new_page()
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _block(self, route: Any) -> None:
        self.foreign.append(route.request.url)
        route.abort()

    def close(self) -> None:
        self.context.close()
        assert not self.errors, f"uncaught errors in the page: {self.errors}"
        assert not self.foreign, f"the page requested other hosts: {self.foreign}"


@pytest.fixture
def visit(browser: Browser) -> Iterator[Visit]:
    tab = Visit(browser, viewport=DESKTOP)
    yield tab
    tab.close()


def _ask(page: Page, question: str) -> None:
    page.fill("#q", question)
    page.press("#q", "Enter")
    _wait_for_results(page, question)


def _wait_for_results(page: Page, question: str) -> None:
    """Until the status line announces results for ``question`` (not the previous ones)."""
    page.wait_for_function(
        "q => document.getElementById('status').textContent.includes(`for “${q}”`)", arg=question
    )


def _top_result(server: str, question: str, **params: Any) -> dict[str, Any]:
    response = httpx.get(f"{server}/search", params={"q": question, **params}, timeout=30)
    return response.json()["results"][0]


@pytest.mark.model
@pytest.mark.browser
@pytest.mark.parametrize(("question", "fragment"), [GERMAN, ENGLISH], ids=["german", "english"])
def test_question_highlights_the_answer_in_the_first_card(
    server: str, visit: Visit, question: str, fragment: str
) -> None:
    page = visit.page
    page.goto(server)
    assert page.evaluate("document.activeElement.id") == "q"  # focused on load
    page.keyboard.type(question)
    page.keyboard.press("Enter")
    first = page.locator("#results .card").first
    mark = first.locator("mark")
    mark.wait_for()
    assert fragment in mark.inner_text()
    # exactly the span the API reports, not a guess
    top = _top_result(server, question, k=5)
    assert mark.inner_text() == top["text"]
    assert first.locator(".file").inner_text() == Path(top["source"]).name
    position = first.locator(".position").inner_text()
    assert f"¶ {top['paragraph'] + 1}" in position
    assert f"chars {top['start']}\N{EN DASH}{top['end']}" in position
    assert "cosine" in (first.locator(".score").get_attribute("title") or "")
    assert page.locator("#results .card").count() == 5
    assert re.match(r"5 results for “.+” · .*ms", page.locator("#status").inner_text())
    assert page.evaluate("new URLSearchParams(location.search).get('q')") == question
    assert "multilingual-e5-small" in page.locator("#index-info").inner_text()


@pytest.mark.model
@pytest.mark.browser
def test_deep_link_runs_the_search_and_history_works(server: str, visit: Visit) -> None:
    page = visit.page
    question = "Wie viel Geld gibt Großbritannien der Ukraine?"
    page.goto(f"{server}/?{urlencode({'q': question, 'k': 3})}")
    _wait_for_results(page, question)
    assert page.input_value("#q") == question
    assert page.input_value("#k") == "3"
    assert page.locator("#results .card").count() == 3
    assert question in page.title()

    _ask(page, "What is Zelensky hoping for?")
    assert "Zelensky" in page.url
    page.go_back()  # pushState kept the first search
    _wait_for_results(page, question)
    assert page.input_value("#q") == question
    assert page.locator("#results .card").count() == 3


@pytest.mark.model
@pytest.mark.browser
def test_examples_are_clickable_and_slash_focuses_the_search(server: str, visit: Visit) -> None:
    page = visit.page
    page.goto(server)
    page.wait_for_function(
        "() => document.getElementById('index-info').textContent.includes('2 doc')"
    )
    _screenshot(page, "home-desktop")
    page.get_by_role("button", name="What is Zelensky hoping for?").click()
    _wait_for_results(page, "What is Zelensky hoping for?")
    assert page.input_value("#q") == "What is Zelensky hoping for?"
    assert page.locator("#examples").is_hidden()  # results take the space
    page.locator("#results .card").first.click()
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "q"


@pytest.mark.model
@pytest.mark.browser
def test_more_context_toggles_between_snippet_and_paragraph(server: str, visit: Visit) -> None:
    page = visit.page
    question = GERMAN[0]
    page.goto(server)
    _ask(page, question)
    top = _top_result(server, question, k=5)
    card = page.locator("#results .card").first
    context = card.locator(".context")
    toggle = card.locator("button.toggle")  # its name changes, so not found by name
    assert toggle.inner_text() == "More context"
    snippet = context.inner_text()
    assert snippet != top["context"] and "…" in snippet
    assert toggle.get_attribute("aria-expanded") == "false"

    toggle.focus()
    page.keyboard.press("Enter")  # keyboard works as well as a click
    assert toggle.get_attribute("aria-expanded") == "true"
    assert toggle.inner_text() == "Less context"
    assert context.inner_text() == top["context"]
    assert card.locator("mark").inner_text() == top["text"]

    toggle.click()
    assert toggle.get_attribute("aria-expanded") == "false"
    assert context.inner_text() == snippet


@pytest.mark.model
@pytest.mark.browser
def test_document_markup_is_shown_as_text_and_never_runs(server: str, visit: Visit) -> None:
    page = visit.page
    page.goto(f"{server}/?{urlencode({'q': MARKUP_QUESTION, 'k': 20})}")
    _wait_for_results(page, MARKUP_QUESTION)
    card = page.locator("#results .card", has=page.locator(".file", has_text=MARKUP_FILE))
    assert card.count() == 1
    toggle = card.get_by_role("button", name="More context")
    if toggle.count():
        toggle.click()
    text = card.locator(".context").inner_text()
    # markup before, inside and after the highlighted sentence, all as literal text
    assert text == MARKUP.strip()
    for literal in ["<img src=x onerror=", "<script>window.__xss", "<img src=y onerror="]:
        assert literal in text
    page.wait_for_timeout(300)  # give a broken image's onerror the chance to fire
    assert page.evaluate("window.__xss") is None
    assert page.title() != "pwned"
    assert page.locator("#results script, #results img").count() == 0
    # the highlight is the API's sentence, counted in code points despite the astral characters
    hits = httpx.get(f"{server}/search", params={"q": MARKUP_QUESTION, "k": 20}).json()["results"]
    expected = next(h["text"] for h in hits if h["source"].endswith(MARKUP_FILE))
    assert card.locator("mark").inner_text() == expected


@pytest.mark.model
@pytest.mark.browser
def test_no_results_and_the_mode_picker(server: str, visit: Visit) -> None:
    page = visit.page
    page.goto(f"{server}/?{urlencode({'q': 'xyzzy qwertz', 'mode': 'bm25'})}")
    page.wait_for_selector("#notice [data-state=no-results]")
    assert page.locator("#status").text_content() == "No results for “xyzzy qwertz”."
    # the API offers `mode` with an enum, so the page offers it too, set from the URL
    assert page.input_value("#picker-mode") == "bm25"
    page.select_option("#picker-mode", "dense")  # changing it searches again
    _wait_for_results(page, "xyzzy qwertz")
    assert "mode=dense" in page.url


@pytest.mark.model
@pytest.mark.browser
def test_collection_picker_lists_the_collections(server: str, visit: Visit) -> None:
    page = visit.page
    page.goto(server)
    picker = page.locator("#picker-collection")
    picker.wait_for()
    names = picker.locator("option").all_inner_texts()
    assert names == ["Server default", "default", "notes"]
    page.wait_for_function(
        "() => document.getElementById('index-info').textContent.includes('2 doc')"
    )
    picker.select_option("notes")
    page.wait_for_function(
        "() => document.getElementById('index-info').textContent.includes('1 doc')"
    )
    _ask(page, MARKUP_QUESTION)
    assert page.locator("#results .card .file").all_inner_texts() == [MARKUP_FILE]
    assert "collection=notes" in page.url


@pytest.mark.model
@pytest.mark.browser
def test_loading_server_error_and_offline_states(server: str, visit: Visit) -> None:
    page = visit.page
    page.goto(server)
    held: list[Any] = []
    page.route("**/search?*", lambda route: held.append(route))
    page.fill("#q", GERMAN[0])
    page.press("#q", "Enter")
    page.wait_for_function("() => document.getElementById('status').textContent === 'Searching…'")
    assert page.get_attribute("#results", "aria-busy") == "true"
    for _ in range(100):  # route handlers run while Playwright waits
        if held:
            break
        page.wait_for_timeout(50)
    held[0].continue_()
    _wait_for_results(page, GERMAN[0])
    assert page.get_attribute("#results", "aria-busy") == "false"
    page.unroute("**/search?*")

    body = {"error": {"code": "internal_error", "message": "internal server error",
                      "hint": "see the server log", "details": []}}  # fmt: skip
    page.route("**/search?*", lambda route: route.fulfill(status=500, json=body))
    page.press("#q", "Enter")
    notice = page.locator("#notice [data-state=error-500]")
    notice.wait_for()
    assert "Server error" in notice.inner_text() and "see the server log" in notice.inner_text()
    assert page.locator("#results .card").count() == 0
    page.unroute("**/search?*")
    notice.get_by_role("button", name="Try again").click()  # the real server answers now
    _wait_for_results(page, GERMAN[0])

    page.route("**/search?*", lambda route: route.abort())
    page.press("#q", "Enter")
    page.wait_for_selector("#notice [data-state=offline]")
    assert "Cannot reach findling" in page.locator("#notice").inner_text()


@pytest.mark.model
@pytest.mark.browser
def test_without_an_index_the_page_explains_what_to_do(empty_server: str, visit: Visit) -> None:
    page = visit.page
    page.goto(empty_server)
    notice = page.locator("#notice [data-state=no-index]")
    notice.wait_for()  # shown on load, from /info
    assert "No index yet" in notice.inner_text()
    assert "findling index seeds/" in notice.locator("code").inner_text()
    assert "No index yet" in page.locator("#index-info").inner_text()
    _ask_expecting_problem(page, GERMAN[0])
    assert "No index yet" in (page.locator("#status").text_content() or "")
    assert "findling index" in page.locator("#notice [data-state=no-index]").inner_text()
    _screenshot(page, "no-index-desktop")


def _ask_expecting_problem(page: Page, question: str) -> None:
    page.fill("#q", question)
    page.press("#q", "Enter")
    page.wait_for_function(
        "() => document.getElementById('status').textContent === 'No index yet.'"
    )


@pytest.mark.model
@pytest.mark.browser
def test_screenshots_desktop_and_phone(server: str, browser: Browser) -> None:
    """Results pages for people to look at (test-artifacts/); the phone view must not scroll
    sideways."""
    url = f"{server}/?{urlencode({'q': GERMAN[0], 'k': 5})}"
    shots: list[tuple[str, dict[str, Any]]] = [
        ("results-desktop", {"viewport": DESKTOP}),
        ("results-phone", {"viewport": PHONE, "device_scale_factor": 2, "is_mobile": True}),
        ("results-desktop-dark", {"viewport": DESKTOP, "color_scheme": "dark"}),
    ]
    for name, context in shots:
        tab = Visit(browser, **context)
        try:
            tab.page.goto(url)
            _wait_for_results(tab.page, GERMAN[0])
            tab.page.locator("#q").blur()
            width = tab.page.evaluate("document.documentElement.scrollWidth")
            assert width <= context["viewport"]["width"], f"{name} scrolls sideways: {width}px"
            _screenshot(tab.page, name)
        finally:
            tab.close()


def _screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.wait_for_timeout(200)  # let transitions settle
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))

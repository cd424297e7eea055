"""The open-data catalogue page in a real browser: both languages, links that download, and no
serious accessibility violations (axe-core)."""

from __future__ import annotations

from conftest import LiveServer

from haechi.api.app import create_app
from haechi.core.settings import Settings


def _axe_serious(page) -> list[str]:
    page.add_script_tag(url="/vendor/axe-core/axe.min.js")
    found = page.evaluate("async () => (await axe.run()).violations"
                          ".filter(v => ['serious', 'critical'].includes(v.impact))"
                          ".map(v => ({id: v.id, nodes: v.nodes.map(n => n.html.slice(0, 200))}))")
    if found:
        print("axe:", found)
    return [v["id"] for v in found]


def test_catalogue_page_in_korean_and_english(browser, sqlite_engine, tmp_path):
    app = create_app(sqlite_engine, Settings(lake_dir=str(tmp_path / "lake")))
    with LiveServer(app) as server:
        page = browser.new_page()
        page.goto(f"{server.url}/open?lang=ko")
        assert page.locator("html").get_attribute("lang") == "ko"
        assert page.locator("h1").inner_text() == "해치 공공데이터"
        assert page.locator("section.dataset").count() >= 12
        assert page.get_by_role("heading", name="재난 발생 이력").is_visible()
        assert _axe_serious(page) == []
        page.keyboard.press("Tab")  # the first stop is the skip link, shown when focused
        assert page.evaluate("document.activeElement.getAttribute('href')") == "#main"

        page.get_by_role("link", name="English").click()
        page.wait_for_url("**/open?lang=en")
        assert page.locator("h1").inner_text() == "Haechi open data"
        assert _axe_serious(page) == []
        section = page.locator("section", has=page.get_by_role("heading", name="Disaster history"))
        with page.expect_download() as download:
            section.get_by_role("link", name="CSV").click()
        assert download.value.suggested_filename == "disasters.csv"
        page.close()

"""The API reference page in a real (headless) Chromium against the real server."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.e2e.conftest import Server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (.ci/run installs Debian's package)"
)


def test_docs_page_lists_the_endpoints_and_links_to_the_openapi_document(server: Server) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            response = page.goto(f"{server.base}/docs")
            assert response is not None and response.status == 200
            assert page.title() == "flowgate API"
            rows = page.locator("table tr").all_inner_texts()
            assert any("POST" in row and "/api/v1/tasks/{id}/complete" in row for row in rows)
            assert any("GET" in row and "/api/v1/audit/verify" in row for row in rows)

            page.get_by_role("link", name="/openapi.json").click()
            page.wait_for_url(f"{server.base}/openapi.json")
            document = json.loads(page.locator("body").inner_text())
            assert document["openapi"].startswith("3.")
            assert "/api/v1/processes/{key}/instances" in document["paths"]
        finally:
            browser.close()

#!/usr/bin/env python3
"""Check a node's interactive API reference in a real headless Chromium.

Fetches the node's OpenAPI document (/openapi.json), opens the reference page the node serves
(/docs/, no CDN: every asset comes from the node), and checks that the page loads (no request
fails, no script error), fetches no address but the node's, and lists every operation of the
document.

    pip install playwright requests     # the browser is Debian's chromium: /usr/bin/chromium
    python3 ops/reference-page.py BASE_URL CA_CERT

Exit status 0 when the page loads whole from the node and lists every operation.
"""
import sys
from urllib.parse import urlparse

import requests
from playwright.sync_api import sync_playwright

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def main():
    base, ca = sys.argv[1].rstrip("/"), sys.argv[2]
    document = requests.get(f"{base}/openapi.json", verify=ca, timeout=30).json()
    assert document["openapi"].startswith("3.1"), f"OpenAPI {document['openapi']}, expected 3.1"
    operations = [
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "put", "post", "delete", "patch")
    ]
    origin = urlparse(base).netloc
    foreign, broken = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        # The node's certificate is issued by the federation CA, which Chromium does not know;
        # the document above was fetched with the CA checked.
        page = browser.new_context(ignore_https_errors=True).new_page()

        def asked(request):
            url = urlparse(request.url)
            if url.scheme in ("http", "https") and url.netloc != origin:
                foreign.append(request.url)

        page.on("request", asked)
        page.on("requestfailed", lambda r: broken.append(f"{r.url}: {r.failure}"))
        page.on("response", lambda r: broken.append(f"{r.url}: {r.status}") if r.status >= 400 else None)
        page.on("pageerror", lambda e: broken.append(f"script error: {e}"))
        page.goto(f"{base}/docs/", wait_until="networkidle", timeout=60_000)
        page.wait_for_selector(".opblock", timeout=60_000)
        shown = page.eval_on_selector_all(
            ".opblock",
            """blocks => blocks.map(b => [
                b.querySelector('.opblock-summary-method').innerText.trim(),
                b.querySelector('.opblock-summary-path').getAttribute('data-path')
            ])""",
        )
        title = page.title()
        browser.close()
    shown = {(m.upper(), p) for m, p in shown}
    missing = [op for op in operations if op not in shown]
    print(f"reference page {base}/docs/ ({title!r}): {len(shown)} operations shown, "
          f"{len(operations)} in /openapi.json")
    for method, path in missing:
        print(f"  missing: {method} {path}")
    for url in foreign:
        print(f"  fetched from another address: {url}")
    for what in broken:
        print(f"  did not load: {what}")
    return 0 if operations and not missing and not foreign and not broken else 1


if __name__ == "__main__":
    sys.exit(main())

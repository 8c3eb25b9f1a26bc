"""Check that nothing on the built docs is cut off at a given window width (headless Chromium).

Every page of the site is opened at ``--width`` pixels (1400 by default) and these are reported:
tables, code blocks and other boxes whose content is wider than what they show (a horizontal
scroll bar hides part of them), images drawn wider than the text column, and pages wider than
the window. Exit status 1 when anything is found.

Needs Chromium and Playwright's Python package (not fewzero's dependencies)::

    apt-get install chromium                 # Debian's package: /usr/bin/chromium
    pip install playwright                   # the driver only; no browser download
    mkdocs build --strict -d site
    python docs/scripts/check_widths.py site --width 1400
"""

from __future__ import annotations

import argparse
import functools
import http.server
import sys
import threading
from pathlib import Path

#: Runs in the page: a list of "what: how many pixels are hidden" lines.
FIND_CUT_OFF = """
() => {
  const found = [];
  const name = (el) => {
    const text = (el.innerText || el.getAttribute('alt') || el.getAttribute('src') || '')
      .trim().split('\\n')[0].slice(0, 70);
    return `${el.tagName.toLowerCase()}.${[...el.classList].join('.')} "${text}"`;
  };
  const root = document.querySelector('.md-content__inner') || document.body;
  const column = root.getBoundingClientRect();
  for (const el of root.querySelectorAll('*')) {
    const style = getComputedStyle(el);
    if (el.clientWidth && el.scrollWidth > el.clientWidth + 1
        && ['auto', 'scroll', 'hidden'].includes(style.overflowX)) {
      found.push(`${name(el)}: ${el.scrollWidth - el.clientWidth} px hidden`);
    }
    if (el.tagName === 'IMG' || el.tagName === 'svg') {
      const box = el.getBoundingClientRect();
      if (box.right > column.right + 1) {
        found.push(`${name(el)}: ${Math.round(box.right - column.right)} px past the column`);
      }
    }
  }
  const page = document.documentElement;
  if (page.scrollWidth > window.innerWidth + 1) {
    found.push(`page: ${page.scrollWidth - window.innerWidth} px wider than the window`);
  }
  return found;
}
"""


def _pages(site: Path) -> list[str]:
    skip = {"404.html"}
    return sorted(
        str(p.relative_to(site)) for p in site.rglob("*.html") if p.name not in skip
        and "assets" not in p.parts and "search" not in p.parts
    )  # fmt: skip


def check(site: Path, width: int, height: int, chromium: str) -> dict[str, list[str]]:
    """``{page: [what is cut off]}`` for every page of the built ``site``."""
    from playwright.sync_api import sync_playwright

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # no line per request
            pass

    handler = functools.partial(Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    flags = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
    found = {}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=flags)
            page = browser.new_page(viewport={"width": width, "height": height})
            for name in _pages(site):
                page.goto(base + name, wait_until="load")
                found[name] = page.evaluate(FIND_CUT_OFF)
            browser.close()
    finally:
        server.shutdown()
    return found


def main(argv: list[str] | None = None) -> int:
    """Check the built site and print what is cut off; 1 when anything is."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path, help="the built site (mkdocs build -d SITE)")
    parser.add_argument("--width", type=int, default=1400, help="window width in px (1400)")
    parser.add_argument("--height", type=int, default=900, help="window height in px (900)")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="the browser to run")
    args = parser.parse_args(argv)
    if not (args.site / "index.html").is_file():
        parser.error(f"site: {args.site} has no index.html; build it with mkdocs build -d SITE")
    found = check(args.site, args.width, args.height, args.chromium)
    bad = {page: what for page, what in found.items() if what}
    for page, what in bad.items():
        print(page)
        for line in what:
            print("   ", line)
    print(f"{len(found)} pages at {args.width} px: {len(bad)} with something cut off")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

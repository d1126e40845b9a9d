"""Debian's Chromium driven by Playwright for the browser tests: launch flags, axe-core, watching a page."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# What this machine needs: no sandbox (root), no GPU (software WebGL through SwiftShader), no background traffic.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--disable-component-update",
    "--no-first-run",
]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
AXE_PATH = "/__axe-core__.js"  # served to the page at its own origin, so the page's CSP allows it
READY = 'body[data-ready="true"]'


@dataclass
class Watched:
    """What a page did: console errors, uncaught exceptions, requests to any other origin (refused)."""

    errors: list[str] = field(default_factory=list)
    elsewhere: list[str] = field(default_factory=list)


def watch(page: Any, origin: str) -> Watched:
    """Record a page's errors and refuse, and record, every request to another origin."""
    seen = Watched()
    page.on("console", lambda m: seen.errors.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda exc: seen.errors.append(f"page: {exc}"))

    def route(route: Any) -> None:
        url = route.request.url
        if url.startswith(("data:", "blob:")) or _origin(url) == origin:
            route.continue_()
        else:
            seen.elsewhere.append(url)
            route.abort()

    page.route("**/*", route)
    return seen


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def with_axe(page: Any) -> None:
    """Serve axe-core at the page's origin (before navigation); `violations` then injects and runs it."""
    assert AXE.exists(), "run scripts/test: it installs axe-core from npm"
    page.route(f"**{AXE_PATH}", lambda route: route.fulfill(path=str(AXE), content_type="text/javascript"))


def violations(page: Any, origin: str) -> list[dict[str, Any]]:
    """axe-core's violations on the page as it is now (every rule axe runs by default)."""
    if not page.evaluate("typeof axe !== 'undefined'"):
        page.add_script_tag(url=f"{origin}{AXE_PATH}")
    found: list[dict[str, Any]] = page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ["violations"]})).violations.map((v) => ({
            id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" ")),
        }))"""
    )
    return found


def tab_until(page: Any, condition: str, *, backwards: bool = False, limit: int = 80) -> None:
    """Press Tab (or Shift+Tab) until `condition` (JavaScript, on document.activeElement as `el`) holds."""
    for _ in range(limit):
        if page.evaluate(f"(() => {{ const el = document.activeElement; return Boolean({condition}); }})()"):
            return
        page.keyboard.press("Shift+Tab" if backwards else "Tab")
    raise AssertionError(f"the keyboard never reached {condition}")

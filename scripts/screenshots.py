"""Screenshots of Notiflow's pages for the docs (``make screenshots``).

Starts ``notiflow sandbox`` (the provider emulator) and ``notiflow serve`` on a fresh SQLite
database in a temporary directory, loads a small demo through the API (clients of several
operators, tags and time zones; a mailing in each state: completed with a few failures, running,
paused, scheduled, cancelled), signs in with the demo's token in the system's Chromium, and saves
a PNG of each page of ``PAGES`` into ``docs/screenshots/``. Nothing is loaded from outside
127.0.0.1: the browser aborts any such request.

The demo's data are fixed and the sandbox's faults seeded, so a new run changes little: the
times, and the running mailing, which moves.

    .venv/bin/python scripts/screenshots.py [--out DIR] [--chromium PATH] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from PIL import Image
from playwright.sync_api import Browser, BrowserContext, FilePayload, Page, Route, sync_playwright

DESKTOP = 1280
PHONE = 390


@dataclass(frozen=True)
class Shot:
    name: str  # docs/screenshots/<name>.png
    path: str  # may name a demo mailing: {completed}, {running}, {paused}, {scheduled}, …
    width: int = DESKTOP
    height: int | None = None  # of the window; None: the usual one for the width
    full_page: bool = True  # False: what the window shows, no more
    signed_in: bool = True
    ready: str = "main"  # a selector that is visible once the page has drawn itself
    act: Callable[[Page], None] | None = None  # what to do on the page before the shot


def submit_empty_form(page: Page) -> None:
    """Send the form as it is: the API's errors show next to their fields."""
    page.get_by_role("button", name="Create").click()
    page.locator(".field-error").first.wait_for()


def import_with_bad_rows(page: Page) -> None:
    """Import a small CSV with two bad rows: the result shows the rows not imported."""
    rows = "phone,operator_code,tag,timezone\n79005550101,900,vip,Europe/Moscow\n"
    rows += "79005550102,900,vip,Mars/Olympus\n7900555,900,vip,UTC\n79005550104,901,,UTC\n"
    upload: FilePayload = {"name": "clients.csv", "mimeType": "text/csv", "buffer": rows.encode()}
    page.set_input_files("#file", files=upload)
    page.get_by_role("button", name="Import").click()
    page.locator("#import-created").wait_for()


# The pages to shoot, in order: a page added to the UI is one line here (its name, its path,
# then any option of Shot).
PAGES = (
    Shot("sign-in", "/ui/sign-in", signed_in=False),
    Shot("dashboard", "/ui/"),
    Shot("mailings", "/ui/mailings"),
    Shot("mailing", "/ui/mailings/{completed}", height=1100, full_page=False),
    Shot("mailing-failed", "/ui/mailings/{completed}?status=failed"),
    Shot("mailing-running", "/ui/mailings/{running}", height=1100, full_page=False),
    Shot("mailing-form", "/ui/mailings/new"),
    Shot("mailing-form-errors", "/ui/mailings/new", act=submit_empty_form),
    Shot("clients", "/ui/clients", height=1100, full_page=False),
    Shot("client", "/ui/clients/1"),
    Shot("clients-import", "/ui/clients/import", act=import_with_bad_rows),
    Shot("settings", "/ui/settings"),
    Shot("docs", "/docs", full_page=False, ready="#operations-tag-clients"),
    Shot("dashboard-phone", "/ui/", PHONE),
    Shot("mailings-phone", "/ui/mailings", PHONE),
    Shot("mailing-phone", "/ui/mailings/{completed}", PHONE),
    Shot("mailing-form-phone", "/ui/mailings/new", PHONE, act=submit_empty_form),
    Shot("clients-phone", "/ui/clients", PHONE),
)

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
TOKEN = "demo-token"
START_TIMEOUT_S = 60
WAIT_TIMEOUT_S = 120
HEIGHT = {DESKTOP: 800, PHONE: 844}

# The demo's clients: every combination, in a fixed order.
OPERATORS = ("900", "916", "925", "977")
TAGS = ("vip", "loyal", "new", "")
ZONES = ("Europe/Moscow", "Asia/Yekaterinburg", "Asia/Novosibirsk", "Asia/Vladivostok", "UTC")
CLIENTS = 160


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(what: str, check: Callable[[], bool], timeout: float = WAIT_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"screenshots: gave up waiting for {what} after {timeout:.0f} s")
        time.sleep(0.2)


@contextlib.contextmanager
def process(argv: list[str], *, env: dict[str, str], cwd: Path, log: Path) -> Iterator[None]:
    """Run ``argv`` (output in ``log``) until the block ends, then stop it with SIGTERM."""
    with open(log, "wb") as output:
        child = subprocess.Popen(argv, env=env, cwd=cwd, stdout=output, stderr=subprocess.STDOUT)
    try:
        yield
    finally:
        child.terminate()
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        if child.returncode not in (0, -15):
            print(log.read_text(errors="replace"), file=sys.stderr)


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


# --- the demo ---------------------------------------------------------------------------------


def iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


class Demo:
    """The demo's data, made through the API; the sandbox's faults set through its own API."""

    def __init__(self, api: httpx.Client, sandbox: httpx.Client) -> None:
        self.api = api
        self.sandbox = sandbox
        self.mailings: dict[str, int] = {}

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.api.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise SystemExit(
                f"screenshots: {method} {path}: {response.status_code} {response.text}"
            )
        return response.json() if response.content else None

    def provider(self, **faults: float) -> None:
        settings = {"latency_ms": 0, "reject_rate": 0, "error_rate": 0, **faults}
        self.sandbox.put("/_sandbox/config", json=settings).raise_for_status()

    def clients(self) -> None:
        rows = ["phone,operator_code,tag,timezone"]
        for i in range(CLIENTS):
            operator = OPERATORS[i % len(OPERATORS)]
            tag = TAGS[(i // len(OPERATORS)) % len(TAGS)]
            zone = ZONES[i % len(ZONES)]
            rows.append(f"7{operator}{1000000 + i * 7919:07d},{operator},{tag},{zone}")
        body = "\n".join(rows) + "\n"
        self.call(
            "POST", "/api/v1/clients/import", content=body, headers={"Content-Type": "text/csv"}
        )

    def mailing(self, key: str, text: str, *, start: datetime, hours: float, **extra: Any) -> int:
        body = {
            "text": text,
            "start_time": iso(start),
            "end_time": iso(start + timedelta(hours=hours)),
        }
        created = self.call("POST", "/api/v1/mailings", json={**body, **extra})
        self.mailings[key] = int(created["id"])
        return self.mailings[key]

    def stats(self, mailing_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self.call("GET", f"/api/v1/mailings/{mailing_id}/stats")
        return result

    def wait_status(self, mailing_id: int, status: str) -> None:
        wait_until(
            f"mailing {mailing_id} to be {status}",
            lambda: self.stats(mailing_id)["status"] == status,
        )

    def wait_sent(self, mailing_id: int, count: int) -> None:
        wait_until(
            f"{count} messages of mailing {mailing_id} to be sent",
            lambda: self.stats(mailing_id)["stats"]["sent"] >= count,
        )

    def load(self) -> None:
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        self.clients()
        # Done: a provider that refuses a few messages for good (seeded: the same ones each run).
        self.provider(reject_rate=0.05)
        done = self.mailing(
            "completed",
            "Spring sale: 20% off everything in store until Sunday. Reply STOP to opt out.",
            start=now - timedelta(minutes=1),
            hours=6,
            filter={"tags": ["vip", "loyal"]},
        )
        self.wait_status(done, "completed")
        self.provider(latency_ms=0)
        notice = self.mailing(
            "notice",
            "Our support line is closed on Monday for maintenance.",
            start=now - timedelta(minutes=1),
            hours=6,
            filter={"operator_codes": ["916"]},
        )
        self.wait_status(notice, "completed")
        # Under way: a slow provider keeps the rest running while the pages are shot.
        self.provider(latency_ms=1500)
        cancelled = self.mailing(
            "cancelled",
            "Flash sale tonight only!",
            start=now - timedelta(minutes=1),
            hours=6,
            filter={"operator_codes": ["900", "925"]},
        )
        self.wait_sent(cancelled, 2)
        self.call("POST", f"/api/v1/mailings/{cancelled}/cancel")
        paused = self.mailing(
            "paused",
            "Your loyalty points expire at the end of the month: spend them before then.",
            start=now - timedelta(minutes=1),
            hours=6,
            filter={"tags": ["loyal"]},
        )
        self.wait_sent(paused, 4)
        self.call("POST", f"/api/v1/mailings/{paused}/pause")
        running = self.mailing(
            "running",
            "Welcome to Notiflow Coffee! Show this message for a free cup.",
            start=now - timedelta(minutes=1),
            hours=6,
            filter={"tags": ["new"]},
        )
        self.wait_sent(running, 3)
        self.provider(latency_ms=4000)  # it stays running until the pages are shot
        tomorrow = now.replace(hour=9, minute=0) + timedelta(days=1)
        self.mailing(
            "scheduled",
            "Good morning! The new autumn collection is in store today.",
            start=tomorrow,
            hours=11,
            filter={"operator_codes": ["977"], "tags": ["vip"]},
            send_window={"start": "09:00", "end": "20:00"},
        )


# --- the pages --------------------------------------------------------------------------------


def stay_local(route: Route) -> None:
    host = urlsplit(route.request.url).hostname
    if host == "127.0.0.1" or urlsplit(route.request.url).scheme in ("data", "blob"):
        route.continue_()
    else:
        route.abort("internetdisconnected")


def new_context(browser: Browser, width: int, height: int) -> BrowserContext:
    phone = width < 600
    context = browser.new_context(
        viewport={"width": width, "height": height},
        device_scale_factor=1,
        is_mobile=phone,
        has_touch=phone,
        timezone_id="UTC",
        locale="en-GB",
    )
    context.route("**/*", stay_local)
    return context


def sign_in(page: Page, base: str) -> None:
    page.goto(f"{base}/ui/sign-in")
    page.get_by_label("API token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Dashboard").wait_for()


def save_png(data: bytes, path: Path) -> int:
    """Store a screenshot with at most 256 colours (a UI has few): a fraction of the size."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    small = image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    small.save(path, optimize=True)
    return path.stat().st_size


def shoot(browser: Browser, base: str, shots: list[Shot], ids: dict[str, int], out: Path) -> None:
    contexts: dict[tuple[int, int, bool], BrowserContext] = {}
    try:
        for shot in shots:
            height = shot.height or HEIGHT.get(shot.width, 800)
            key = (shot.width, height, shot.signed_in)
            if key not in contexts:
                contexts[key] = new_context(browser, shot.width, height)
                if shot.signed_in:
                    sign_in(contexts[key].new_page(), base)
            page = contexts[key].new_page()
            page.goto(base + shot.path.format(**ids))
            page.locator(shot.ready).first.wait_for()
            if shot.act is not None:
                shot.act(page)
            page.wait_for_load_state("networkidle")
            data = page.screenshot(full_page=shot.full_page, animations="disabled", caret="hide")
            size = save_png(data, out / f"{shot.name}.png")
            print(
                f"  {shot.name}.png  {shot.width}px  {size // 1024} KiB  {shot.path.format(**ids)}"
            )
            page.close()
    finally:
        for context in contexts.values():
            context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT, help="where the PNGs go")
    parser.add_argument("--chromium", type=Path, default=Path("/usr/bin/chromium"))
    parser.add_argument("--only", nargs="*", metavar="NAME", help="only these pages of PAGES")
    args = parser.parse_args()
    shots = [s for s in PAGES if not args.only or s.name in args.only]
    if not args.chromium.exists():
        raise SystemExit(f"screenshots: no Chromium at {args.chromium} (apt-get install chromium)")
    args.out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="notiflow-screenshots-") as tmp:
        work = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFLOW_")}
        sandbox_port, port = free_port(), free_port()
        sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        base = f"http://127.0.0.1:{port}"
        notiflow = [sys.executable, "-m", "notiflow"]
        sandbox_argv = [*notiflow, "sandbox", "--port", str(sandbox_port), "--seed", "2026"]
        serve_env = {
            **env,
            "NOTIFLOW_DATABASE_URL": f"sqlite+aiosqlite:///{work}/notiflow.db",
            "NOTIFLOW_API_TOKENS": TOKEN,
            "NOTIFLOW_PROVIDER_URL": f"{sandbox_url}/v1/send",
            "NOTIFLOW_SEND_CONCURRENCY": "2",
            "NOTIFLOW_ENGINE_POLL_SECONDS": "0.5",
            "NOTIFLOW_WORKER_NAME": "notiflow-demo",
            "NOTIFLOW_LOG_LEVEL": "WARNING",
        }
        serve_argv = [*notiflow, "serve", "--host", "127.0.0.1", "--port", str(port)]
        print(f"screenshots: the demo in {work}")
        with (
            process(sandbox_argv, env=env, cwd=work, log=work / "sandbox.log"),
            process(serve_argv, env=serve_env, cwd=work, log=work / "serve.log"),
        ):
            wait_until(
                "the sandbox", lambda: answers(f"{sandbox_url}/_sandbox/config"), START_TIMEOUT_S
            )
            wait_until("notiflow serve", lambda: answers(f"{base}/health/live"), START_TIMEOUT_S)
            headers = {"Authorization": f"Bearer {TOKEN}"}
            with (
                httpx.Client(base_url=base, headers=headers, timeout=30) as api,
                httpx.Client(base_url=sandbox_url, timeout=30) as sandbox,
            ):
                demo = Demo(api, sandbox)
                demo.load()
                print(f"screenshots: demo mailings {demo.mailings}; saving into {args.out}")
                with sync_playwright() as playwright:
                    browser = playwright.chromium.launch(
                        executable_path=args.chromium, headless=True
                    )
                    try:
                        shoot(browser, base, shots, demo.mailings, args.out)
                    finally:
                        browser.close()


if __name__ == "__main__":
    main()

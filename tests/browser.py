"""Headless Chromium for tests (Debian ``chromium``): screenshots and the DOM after scripts ran.

    from tests.browser import chromium, screenshot, dump_dom
    png = screenshot("file:///tmp/report.html", tmp_path / "report.png")
    html = dump_dom("http://127.0.0.1:9000/sacred", budget_ms=8000)

Tests that use it are marked ``browser``; ``chromium()`` skips the test when no browser is
installed, or fails it with SEM_REQUIRE_SERVICES=1 (``tests/run.sh`` installs Debian's chromium
and sets it, so CI always has one).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.services import missing_service

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",  # tests run as root in CI
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def chromium() -> str:
    """Path of the Chromium binary; skips (or fails, see tests/services.py) the calling test if
    there is none."""
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    if Path("/usr/bin/chromium").exists():
        return "/usr/bin/chromium"
    missing_service("headless Chromium is not installed (apt-get install chromium; tests/run.sh does it)")


def as_url(target: str | os.PathLike) -> str:
    text = os.fspath(target)
    if "://" in text:
        return text
    return Path(text).resolve().as_uri()


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        cmd = [chromium(), *FLAGS, f"--user-data-dir={profile}", *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"chromium exited with {proc.returncode}: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return proc


def screenshot(
    target: str | os.PathLike,
    png: str | os.PathLike,
    *,
    size: tuple[int, int] = (1400, 900),
    budget_ms: int | None = None,
    timeout: float = 90,
) -> Path:
    """Render ``target`` (URL or file path) and save a PNG of the window; returns the PNG path.
    ``budget_ms`` lets scripts run that long (virtual time) before the shot."""
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    args = [f"--screenshot={png}", f"--window-size={size[0]},{size[1]}"]
    if budget_ms:
        args.append(f"--virtual-time-budget={budget_ms}")
    _run([*args, as_url(target)], timeout)
    if not png.exists() or png.stat().st_size == 0:
        raise RuntimeError(f"chromium wrote no screenshot of {target} to {png}")
    return png


def dump_dom(
    target: str | os.PathLike,
    *,
    budget_ms: int | None = None,
    timeout: float = 90,
    window_size: tuple[int, int] | None = None,
) -> str:
    """The serialised DOM of ``target`` after loading (and ``budget_ms`` of scripts), laid out in
    a window of ``window_size`` when given (scripts that measure the layout see that width)."""
    args = ["--dump-dom"]
    if window_size:
        args.append(f"--window-size={window_size[0]},{window_size[1]}")
    if budget_ms:
        args.append(f"--virtual-time-budget={budget_ms}")
    return _run([*args, as_url(target)], timeout).stdout


def print_pdf(target: str | os.PathLike, pdf: str | os.PathLike, *, timeout: float = 90) -> Path:
    """Print ``target`` to ``pdf`` as Chromium's print dialog would (print stylesheet, A4/Letter),
    without the header and footer lines; returns the PDF path."""
    pdf = Path(pdf).resolve()
    pdf.parent.mkdir(parents=True, exist_ok=True)
    _run([f"--print-to-pdf={pdf}", "--no-pdf-header-footer", as_url(target)], timeout)
    if not pdf.exists() or pdf.stat().st_size == 0:
        raise RuntimeError(f"chromium printed no PDF of {target} to {pdf}")
    return pdf


def png_size(png: str | os.PathLike) -> tuple[int, int]:
    """(width, height) read from a PNG header."""
    data = Path(png).read_bytes()[:24]
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{png} is not a PNG file")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")

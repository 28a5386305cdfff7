"""The Chromium the console's browser tests and screenshots drive through Playwright: the system's (Debian's
`chromium` package), not a browser build Playwright would download. CHROMIUM names another binary."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_HINT = "install Debian's chromium (`sudo apt-get install chromium`) or set CHROMIUM to a Chromium binary"


def find_chromium() -> Path | None:
    named = os.environ.get("CHROMIUM")
    if named:
        return Path(named) if Path(named).is_file() else None
    for candidate in CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return Path(found)
    return None


# Chromium's sandbox needs user namespaces, which containers (and root) often lack: the pages are our own.
LAUNCH_ARGS = ("--no-sandbox",)

"""Open a report in a real headless Chromium and read back what the page saw (no install at test time)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

#: Written into the page before ``</body>``: after the load event, the title becomes
#: ``IMAGES <decoded>/<total> W <natural widths>`` (an image decoded when complete with a natural width).
PROBE = ("<script>window.addEventListener('load',function(){var im=Array.prototype.slice.call(document.images);"
         "var ok=im.filter(function(i){return i.complete&&i.naturalWidth>0;});"
         "document.title='IMAGES '+ok.length+'/'+im.length+' W '+ok.map(function(i){return i.naturalWidth;})"
         ".join(',');});</script>")
_TITLE = re.compile(r"<title>IMAGES (\d+)/(\d+) W ([\d,]*)</title>")


def chromium_path() -> str:
    """The Chromium binary, or skip the test with the reason."""
    path = "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else shutil.which("chromium")
    if not path:
        pytest.skip("chromium not installed (/usr/bin/chromium absent): apt-get install -y chromium to run the "
                    "browser test of report.html")
    return path


def dump_dom(html_path: Path, tmp: Path, extra_body: str = "") -> tuple[str, int, int, list[int]]:
    """The DOM after load of a copy of ``html_path`` with :data:`PROBE` (and ``extra_body``) injected.

    Returns ``(dom, decoded images, images, natural widths of the decoded ones)``.
    """
    exe = chromium_path()
    text = Path(html_path).read_text(encoding="utf-8")
    assert "</body>" in text
    probe = tmp / "probe.html"
    probe.write_text(text.replace("</body>", extra_body + PROBE + "</body>"), encoding="utf-8")
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-extensions", "--no-first-run", f"--user-data-dir={tmp / 'profile'}",
           "--virtual-time-budget=5000", "--dump-dom", probe.resolve().as_uri()]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    dom = out.stdout
    assert out.returncode == 0 and dom, f"chromium failed ({out.returncode}): {out.stderr[-2000:]}"
    m = _TITLE.search(dom)
    assert m, f"the probe did not run (title not set): {dom[:300]}"
    widths = [int(w) for w in m.group(3).split(",") if w]
    return dom, int(m.group(1)), int(m.group(2)), widths

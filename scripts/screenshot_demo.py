"""A PNG of the web demo as a browser shows it, with headless Chromium (Debian's `chromium` and
`chromium-driver`; `scripts/install_browser.sh` installs them).

    .venv/bin/python MU-LLaMA/gradio_app.py &            # serves http://127.0.0.1:7860
    .venv/bin/python scripts/screenshot_demo.py http://127.0.0.1:7860 demo.png

Waits until the page has drawn its question box (gradio builds the page in the browser after
loading it), then saves the window. Works as root too (--no-sandbox).
"""

import argparse
import shutil
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from llama.flags import HelpFormatter

CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--window-size=1280,1000"]


def open_browser() -> webdriver.Chrome:
    """Headless system Chromium driven by its system chromedriver."""
    missing = [name for name in ("chromium", "chromedriver") if not shutil.which(name)]
    if missing:
        raise SystemExit(f"{' and '.join(missing)} not found: run `bash scripts/install_browser.sh` (as root)")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))


def screenshot(browser: webdriver.Chrome, url: str, out: str, timeout: float = 30.0) -> None:
    browser.get(url)
    WebDriverWait(browser, timeout).until(lambda d: d.find_elements(By.CSS_SELECTOR, "textarea"))
    browser.save_screenshot(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("url", help="where gradio_app.py serves, e.g. http://127.0.0.1:7860")
    parser.add_argument("out", help="the PNG to write")
    args = parser.parse_args(argv)
    browser = open_browser()
    try:
        screenshot(browser, args.url, args.out)
    finally:
        browser.quit()
    print(args.out, file=sys.stderr)


if __name__ == "__main__":
    main()

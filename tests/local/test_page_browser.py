"""The page at GET /, in headless Chromium, against the local API (template.yaml, real models, real HTTP).

Chromium and chromedriver come from Debian's packages (`make browser`); without them the test is skipped
and says why.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from samlocal.testing import LocalApi
from sample_images import encode, photo_image
from support import ROOT

CAT_CLASSES = {"tabby", "tiger cat", "Egyptian cat"}
FIRST_BOX_COLOR = (230, 25, 75)  # #e6194b, the page's first box colour
KEYPOINT_COLOR = (255, 225, 25)  # #ffe119
TIMEOUT = 120


def browser_paths() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.skip("no headless browser: chromium and chromedriver are not installed (run `make browser`)")
    return chromium, driver


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    chromium, chromedriver = browser_paths()
    from selenium import webdriver  # noqa: PLC0415 - only once a browser is known to exist
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415

    os.environ.setdefault("SE_OFFLINE", "true")  # selenium must not try to download a browser or a driver
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(argument)
    browser = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    browser.set_script_timeout(TIMEOUT)
    try:
        yield browser
    finally:
        browser.quit()


@pytest.fixture(scope="module", params=["REST", "HTTP"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalApi]:
    """The page served by the REST API, then by the HTTP API of ApiType=HTTP (v2 events, no binary media types)."""
    log = tmp_path_factory.mktemp("page") / "console.log"
    overrides = f"ApiType={request.param}"
    local_api = LocalApi(ROOT / "template.yaml", log, "--warm-containers", "eager", "--parameter-overrides", overrides)
    try:
        yield local_api
    finally:
        local_api.close()


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("photos")
    files = {}
    for name in ("astronaut", "chelsea"):
        files[name] = folder / f"{name}.jpg"
        files[name].write_bytes(encode(photo_image(name), "JPEG", quality=92))
    files["notes"] = folder / "notes.jpg"
    files["notes"].write_bytes(b"these are notes, not a picture")
    return files


def open_page(driver: Any, api: LocalApi) -> None:
    from selenium.webdriver.support.ui import WebDriverWait  # noqa: PLC0415

    driver.get(api.url + "/")
    WebDriverWait(driver, TIMEOUT).until(
        lambda d: d.execute_script("return document.querySelectorAll('#classifier option').length") > 1
    )


def upload(driver: Any, *files: Path) -> list[dict[str, Any]]:
    """Choose files in the page; once every card is done, what each card shows."""
    from selenium.webdriver.common.by import By  # noqa: PLC0415
    from selenium.webdriver.support.ui import WebDriverWait  # noqa: PLC0415

    driver.find_element(By.ID, "files").send_keys("\n".join(str(file) for file in files))
    WebDriverWait(driver, TIMEOUT).until(
        lambda d: d.execute_script(
            "const cards = [...document.querySelectorAll('.card')];"
            "return cards.length === arguments[0] && cards.every((c) => ['done', 'error'].includes(c.dataset.state));",
            len(files),
        )
    )
    cards: list[dict[str, Any]] = driver.execute_script(
        """
        return [...document.querySelectorAll('.card')].map((card) => {
          const canvas = card.querySelector('canvas');
          const drawn = JSON.parse(canvas.dataset.drawn || '[]');
          const context = canvas.getContext('2d');
          const pixel = (x, y) => [...context.getImageData(Math.round(x), Math.round(y), 1, 1).data.slice(0, 3)];
          return {
            title: card.querySelector('h2').textContent,
            state: card.dataset.state,
            labels: [...card.querySelectorAll('.labels li')].map((li) => li.firstChild.textContent.trim()),
            boxes: [...card.querySelectorAll('.boxes li')].map((li) => li.textContent),
            note: card.querySelector('.meta').textContent,
            width: canvas.width,
            boxCount: Number(canvas.dataset.boxes),
            keypointCount: Number(canvas.dataset.keypoints || 0),
            drawn: drawn,
            edge: drawn.map((b) => pixel(b.x1, (b.y1 + b.y2) / 2)),
          };
        });
        """
    )
    return cards


def test_the_page_shows_labels_boxes_and_landmarks_of_uploaded_photos(
    driver: Any, api: LocalApi, photos: dict[str, Path], tmp_path: Path
) -> None:
    open_page(driver, api)
    assert driver.title == "lambda-vision"
    pickers = driver.execute_script(
        "return ['classifier', 'detector'].map((id) => [...document.getElementById(id).options].map((o) => o.value))"
    )
    assert pickers[0][:1] == ["imagenet"] and {"orientation", "nsfw", ""} <= set(pickers[0])
    assert pickers[1][:1] == ["faces"] and {"layout", ""} <= set(pickers[1])
    assert driver.execute_script("return document.getElementById('classifier').value") == "imagenet"

    astronaut, cat = upload(driver, photos["astronaut"], photos["chelsea"])
    driver.save_screenshot(str(tmp_path / "page.png"))

    assert astronaut["title"] == "astronaut.jpg" and astronaut["state"] == "done"
    assert astronaut["boxCount"] == 1 and astronaut["keypointCount"] == 5
    assert astronaut["boxes"][0].startswith("face at ") and "with 5 landmarks" in astronaut["boxes"][0]
    (box,) = astronaut["drawn"]
    assert 170 <= box["x1"] <= 190 and 250 <= box["x2"] <= 280  # the canvas shows the photo at its own size
    red, green, blue = astronaut["edge"][0]
    assert abs(red - FIRST_BOX_COLOR[0]) < 40 and abs(green - FIRST_BOX_COLOR[1]) < 40 and blue < 130

    assert cat["title"] == "chelsea.jpg" and cat["state"] == "done"
    assert set(cat["labels"][:3]) & CAT_CLASSES
    assert cat["boxCount"] == 0
    assert cat["boxes"] == ["nothing detected"]
    assert cat["note"] == "451\u00d7300 px"  # width x height


def test_the_page_classifies_each_detected_face_when_asked(driver: Any, api: LocalApi, photos: dict[str, Path]) -> None:
    open_page(driver, api)
    driver.execute_script("document.getElementById('per-box').checked = true")

    (astronaut,) = upload(driver, photos["astronaut"])

    assert astronaut["state"] == "done"
    assert astronaut["boxCount"] == 1 and astronaut["keypointCount"] == 5
    assert astronaut["labels"] == []  # the classifier answered per box, not for the whole photo
    assert astronaut["boxes"][0].startswith("face → ")


def test_the_page_says_in_words_what_went_wrong(driver: Any, api: LocalApi, photos: dict[str, Path]) -> None:
    open_page(driver, api)
    # A model the API does not have (as if it was removed since the page loaded)
    driver.execute_script(
        "const s = document.getElementById('classifier'); const o = document.createElement('option');"
        "o.value = 'retired'; o.textContent = 'retired'; s.appendChild(o); s.value = 'retired';"
    )

    notes, astronaut = upload(driver, photos["notes"], photos["astronaut"])

    assert notes["state"] == "error"
    assert notes["note"].startswith("notes.jpg is not an image this browser can show")
    assert astronaut["state"] == "error"
    assert "Labels: No model named 'retired'. Models: faces, imagenet, layout, nsfw, orientation." in astronaut["note"]
    assert astronaut["boxCount"] == 1  # the detector's answer is still drawn

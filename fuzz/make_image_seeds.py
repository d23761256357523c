#!/usr/bin/python3
"""make_image_seeds.py — writes the seed corpus of fuzz_image (fuzz/corpus/image/): one tiny
picture per format stb_image reads (an item light on dark, or dark on light), each behind the
target's option byte. Run once; the files are committed. Needs Pillow (python3-pil)."""
import io
import os

from PIL import Image

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "image")
os.makedirs(here, exist_ok=True)


def picture(w, h, mode, light_background):
    img = Image.new("L", (w, h), 230 if light_background else 10)
    for y in range(h // 4, 3 * h // 4):
        for x in range(w // 3, 2 * w // 3):
            img.putpixel((x, y), 40 if light_background else 220)
    return img.convert(mode)


seeds = [
    ("png-grey", picture(12, 10, "L", False), "PNG", {}),
    ("png-rgba", picture(9, 14, "RGBA", True), "PNG", {}),
    ("png-palette", picture(10, 10, "P", False), "PNG", {}),
    ("jpeg", picture(16, 16, "RGB", True), "JPEG", {"quality": 60}),
    ("jpeg-progressive", picture(16, 8, "L", False), "JPEG", {"progressive": True}),
    ("bmp", picture(8, 6, "RGB", False), "BMP", {}),
    ("pgm", picture(7, 9, "L", True), "PPM", {}),
    ("ppm", picture(6, 5, "RGB", False), "PPM", {}),
    ("gif", picture(8, 8, "P", False), "GIF", {}),
    ("tga", picture(5, 7, "RGB", True), "TGA", {}),
]
for i, (name, img, fmt, opts) in enumerate(seeds):
    buf = io.BytesIO()
    img.save(buf, fmt, **opts)
    # The option byte: limits, inversion and output sizes vary across the seeds.
    with open(os.path.join(here, name), "wb") as f:
        f.write(bytes([(i * 5) & 0xFF]) + buf.getvalue())

"""Test pictures that stay recognisable after scaling and encoding."""
from __future__ import annotations

import numpy as np
from PIL import Image


def quadrants(size: tuple[int, int] = (320, 180)) -> Image.Image:
    """A picture with four distinct colour quadrants: red, green / blue, yellow."""
    width, height = size
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[: height // 2, : width // 2] = (220, 40, 40)
    pixels[: height // 2, width // 2:] = (40, 200, 60)
    pixels[height // 2:, : width // 2] = (40, 60, 220)
    pixels[height // 2:, width // 2:] = (240, 220, 40)
    return Image.fromarray(pixels, "RGB")

"""Figures of whole photos at full resolution: grey input | colourised (with `colourize`) | original."""
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .images import load_rgb

__all__ = ['comparison_figure', 'sample_heldout_strips']

LABELS = ('grey input', 'colourised', 'original')


def sample_heldout_strips(valid_pct=0.2, names=None):
    """The held-out strips of the embedded photos (the right-most `valid_pct` of each, which `sample_photos_dls`
    never trains on) at full resolution, as {name: uint8 RGB array}."""
    from .data import PhotoCrops, SAMPLE_PHOTOS
    out = {}
    for name in names or SAMPLE_PHOTOS:
        ph = PhotoCrops.photo(name)
        out[name] = np.ascontiguousarray(ph[:, int(ph.shape[1] * (1 - valid_pct)):])
    return out


def comparison_figure(learn, photos, path, render_size=None, gap=6, label_h=16, per_row=None):
    """For each photo (name -> path or RGB array): grey input | colourised (with `colourize`) | original, side by side
    at full resolution (no resampling), one labelled group per photo, `per_row` groups to a row (default: all in one
    row). Writes a PNG at `path` and returns it."""
    from .inference import colourize
    groups = []
    for name, src in photos.items():
        rgb = np.asarray(load_rgb(src))
        grey = _grey_of(rgb)
        col = np.asarray(colourize(learn, grey, render_size=render_size).convert('RGB'))
        groups.append((Path(str(name)).stem, [grey, col, rgb]))
    per_row = per_row or len(groups)
    rows = [groups[i:i + per_row] for i in range(0, len(groups), per_row)]
    width = lambda row: sum(sum(im.shape[1] for im in ims) + 2 * gap for _, ims in row) + gap * (len(row) - 1)
    heights = [max(ims[0].shape[0] for _, ims in row) + 2 * label_h for row in rows]
    canvas = Image.new('RGB', (max(width(r) for r in rows), sum(heights) + gap * (len(rows) - 1)), 'white')
    draw, y = ImageDraw.Draw(canvas), 0
    for row, h in zip(rows, heights):
        x = 0
        for name, ims in row:
            draw.text((x + 2, y + 2), name, fill='black')
            for lab, im in zip(LABELS, ims):
                canvas.paste(Image.fromarray(im), (x, y + 2 * label_h))
                draw.text((x + 2, y + label_h), lab, fill=(90, 90, 90))
                x += im.shape[1] + gap
            x += gap
        y += h + gap
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


def _grey_of(rgb):
    "The photo's lightness as a grey RGB image (what an old black-and-white print of it would hold)."
    from .inference import GreyImage
    return GreyImage.create(rgb).grey_rgb()

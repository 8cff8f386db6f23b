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


def comparison_figure(learn, photos, path, render_size=None, gap=6, label_h=16):
    """For each photo (name -> path or RGB array): grey input | colourised | original, side by side at full
    resolution (no resampling), one group per photo, labelled. Writes a PNG at `path` and returns it."""
    from .inference import colourize
    groups = []
    for name, src in photos.items():
        rgb = np.asarray(load_rgb(src))
        grey = _grey_of(rgb)
        col = np.asarray(colourize(learn, grey, render_size=render_size).convert('RGB'))
        groups.append((Path(str(name)).stem, [grey, col, rgb]))
    H = max(g[1][0].shape[0] for g in groups)
    W = sum(sum(im.shape[1] for im in ims) + 2 * gap for _, ims in groups) + gap * (len(groups) - 1)
    canvas = Image.new('RGB', (W, H + 2 * label_h), 'white')
    draw, x = ImageDraw.Draw(canvas), 0
    for name, ims in groups:
        draw.text((x + 2, 2), name, fill='black')
        for lab, im in zip(LABELS, ims):
            canvas.paste(Image.fromarray(im), (x, 2 * label_h))
            draw.text((x + 2, label_h), lab, fill=(90, 90, 90))
            x += im.shape[1] + gap
        x += gap
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


def _grey_of(rgb):
    "The photo's lightness as a grey RGB image (what an old black-and-white print of it would hold)."
    from .inference import GreyImage
    return GreyImage.create(rgb).grey_rgb()

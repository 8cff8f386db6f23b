"""Figures of whole photos at full resolution: grey input | colourised (with `colourize`) | original."""
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .images import load_rgb

__all__ = ['comparison_figure', 'sample_heldout_strips', 'draw_points']

def sample_heldout_strips(valid_pct=0.2, names=None):
    """The held-out strips of the embedded photos (the right-most `valid_pct` of each, which `sample_photos_dls`
    never trains on) at full resolution, as {name: uint8 RGB array}."""
    from .data import PhotoCrops, SAMPLE_PHOTOS
    out = {}
    for name in names or SAMPLE_PHOTOS:
        ph = PhotoCrops.photo(name)
        out[name] = np.ascontiguousarray(ph[:, int(ph.shape[1] * (1 - valid_pct)):])
    return out


def comparison_figure(learn, photos, path, render_size=None, gap=6, label_h=16, per_row=None, hints=None):
    """For each photo (name -> path or RGB array): grey input | colourised (with `colourize`) | original, side by side
    at full resolution (no resampling), one labelled group per photo, `per_row` groups to a row (default: all in one
    row). `hints` (name -> [(x, y, colour), ...], for a model trained with hints) adds a panel after 'colourised':
    the photo colourised with those points, drawn on it. Writes a PNG at `path` and returns it."""
    from .inference import colourize
    groups = []
    for name, src in photos.items():
        rgb = np.asarray(load_rgb(src))
        grey = _grey_of(rgb)
        col = np.asarray(colourize(learn, grey, render_size=render_size).convert('RGB'))
        panels = [('grey input', grey), ('colourised', col)]
        if hints is not None:
            pts = hints.get(name, [])
            hinted = colourize(learn, grey, render_size=render_size, hints=pts) if pts else col
            panels.append((f'{len(pts)} hint{"s" * (len(pts) != 1)}', np.asarray(draw_points(hinted, pts))))
        groups.append((Path(str(name)).stem, panels + [('original', rgb)]))
    per_row = per_row or len(groups)
    rows = [groups[i:i + per_row] for i in range(0, len(groups), per_row)]
    width = lambda row: sum(sum(im.shape[1] for _, im in ims) + gap * (len(ims) - 1) for _, ims in row) + \
        2 * gap * (len(row) - 1)
    heights = [max(ims[0][1].shape[0] for _, ims in row) + 2 * label_h for row in rows]
    canvas = Image.new('RGB', (max(width(r) for r in rows), sum(heights) + gap * (len(rows) - 1)), 'white')
    draw, y = ImageDraw.Draw(canvas), 0
    for row, h in zip(rows, heights):
        x = 0
        for name, ims in row:
            draw.text((x + 2, y + 2), name, fill='black')
            for lab, im in ims:
                canvas.paste(Image.fromarray(im), (x, y + 2 * label_h))
                draw.text((x + 2, y + label_h), lab, fill=(90, 90, 90))
                x += im.shape[1] + gap
            x += gap
        y += h + gap
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


def draw_points(img, points, selected=None) -> Image.Image:
    "The picture with each hint drawn as a dot of its colour in a black and white ring (the selected one larger)."
    from .hints import parse_colour
    im = Image.fromarray(np.asarray(img)).convert('RGB')
    d = ImageDraw.Draw(im)
    r0 = max(4, round(min(im.size) / 80))
    for k, (x, y, c) in enumerate(points):
        r = r0 * 3 // 2 if k == selected else r0
        fill = tuple(int(v * 255 + 0.5) for v in parse_colour(c).tolist())
        d.ellipse([x - r - 2, y - r - 2, x + r + 2, y + r + 2], fill=(0, 0, 0))
        d.ellipse([x - r - 1, y - r - 1, x + r + 1, y + r + 1], fill=(255, 255, 255))
        d.ellipse([x - r + 1, y - r + 1, x + r - 1, y + r - 1], fill=fill)
    return im


def _grey_of(rgb):
    "The photo's lightness as a grey RGB image (what an old black-and-white print of it would hold)."
    from .inference import GreyImage
    return GreyImage.create(rgb).grey_rgb()

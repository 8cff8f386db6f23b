"""The README's opening figure: held-out photos at full resolution, grey input | colourised | original.

Takes an exported colouriser (`learn.export`, e.g. `colourgan train --dataset imagenette ...` or the Imagenette
runs of examples/encoder_transfer.py) and photos it never trained on: by default the first photo of evenly spaced
classes of Imagenette's validation folder, at the size they are stored (160 px short side here), colourised with
`colourize` (the whole photo, any size). Rerun it after training to redraw the figure:

    python examples/photo_figure.py --model runs/encoder_transfer/imagenet_s42/final.pkl \\
        --photos ../shared/data/imagenette2-160/val --n 6 --out images/heldout_photos.png

`--hints hints.json` (for a model trained with `--hints`) draws the photos the file names instead (keys as in the
figure's labels: "n03888257/ILSVRC2012_val_00001440" under --photos), each with one more panel: colourised with the
points the file gives it, the points drawn. The README's hint row:

    python examples/photo_figure.py --model models/photos.pkl --hints examples/heldout_hints.json \
        --per-row 3 --out images/heldout_hints.png

`--score` also scores the model on *every* photo under --photos as a user sees them: the whole photo at its stored
resolution through `colourize`, against the original and against grey output (PSNR, SSIM, colourfulness and its
gap, blotch pixels), with a progress bar.
"""
import argparse
from pathlib import Path

import numpy as np
import torch
from fastprogress.fastprogress import progress_bar
from PIL import Image

from colourgan_fastai import load_colourizer, colourize_many, rgb_to_lab

from colourgan_fastai.images import find_images

from colourgan_fastai.inference import GreyImage

from colourgan_fastai.metrics import psnr, ssim, colourfulness, spurious_colour
from colourgan_fastai.figures import comparison_figure


def pick_photos(folder, n, skip=0):
    """`n` photos from `folder`: with class subfolders, the `skip`-th photo of each of `n` evenly spaced classes;
    otherwise `n` evenly spaced photos. Sorted paths, so the same photos every time."""
    folder = Path(folder)
    classes = sorted(d for d in folder.iterdir() if d.is_dir())
    if classes:
        chosen = [classes[i] for i in np.linspace(0, len(classes) - 1, min(n, len(classes))).round().astype(int)]
        photos = [sorted(find_images(c))[skip] for c in chosen]
    else:
        files = sorted(find_images(folder))
        photos = [files[i] for i in np.linspace(0, len(files) - 1, min(n, len(files))).round().astype(int)]
    if len(photos) < n: raise SystemExit(f"only {len(photos)} photos (or classes) under {folder}, asked for {n}")
    return photos


def named_photos(folder, hints):
    "The photos under `folder` named by the keys of `hints` ('class/stem' or 'stem'), in the file's order."
    by_label = {}
    for f in find_images(folder): by_label.setdefault(f.parent.name + '/' + f.stem, f); by_label.setdefault(f.stem, f)
    missing = [k for k in hints if k not in by_label]
    if missing: raise SystemExit(f"no photo under {folder} for {', '.join(missing)}")
    return [by_label[k] for k in hints]


def score_photos(learn, files, bs=16):
    """Mean scores of `colourize` on whole photos at their stored size against the originals, and of grey output:
    {'model': {...}, 'grey': {...}} with psnr, ssim, colourfulness, delta_colourfulness (mean CF minus the truth's)
    and spurious_colour (blotch pixels)."""
    t = lambda a: torch.from_numpy(np.asarray(a, np.float32) / 255).permute(2, 0, 1)[None]
    per = {'model': [], 'grey': []}
    true_cf = []
    for k in progress_bar(range(0, len(files), bs)):
        chunk = files[k:k + bs]
        greys = [GreyImage.create(f) for f in chunk]                 # each photo read and turned grey once
        for f, g, out in zip(chunk, greys, colourize_many(learn, greys, bs=bs)):
            truth = t(Image.open(f).convert('RGB'))
            true_cf.append(colourfulness(truth).item())
            true_ab = rgb_to_lab(truth)[:, 1:]                       # once per photo, for both outputs
            for name, im in (('model', t(out)), ('grey', t(g.grey_rgb()))):
                ab = rgb_to_lab(im)[:, 1:]
                per[name].append(dict(psnr=psnr(im, truth).item(), ssim=ssim(im, truth).item(),
                                      colourfulness=colourfulness(im).item(),
                                      spurious_colour=spurious_colour(ab, true_ab).item()))
    res = {}
    for name, rows in per.items():
        m = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        res[name] = {**m, 'delta_colourfulness': m['colourfulness'] - float(np.mean(true_cf))}
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--model', required=True, help='an exported colouriser (.pkl)')
    p.add_argument('--photos', default='../shared/data/imagenette2-160/val',
                   help='a folder of held-out photos (class subfolders allowed)')
    p.add_argument('--files', nargs='+', help='these photos instead of picking from --photos')
    p.add_argument('--n', type=int, default=6); p.add_argument('--skip', type=int, default=0)
    p.add_argument('--per-row', type=int, default=2, help='photos per row of the figure')
    p.add_argument('--out', default='images/heldout_photos.png')
    p.add_argument('--hints', help="a JSON file: the figure's photo labels -> [[x, y, '#rrggbb'], ...]")
    p.add_argument('--score', action='store_true', help='also score the model on every photo under --photos')
    a = p.parse_args(argv)
    learn = load_colourizer(a.model)
    hints = None
    if a.hints:
        from colourgan_fastai.hints import read_hints_file
        hints = read_hints_file(a.hints)
    files = [Path(f) for f in a.files] if a.files else \
        named_photos(a.photos, hints) if hints else pick_photos(a.photos, a.n, a.skip)
    path = comparison_figure(learn, {f.parent.name + '/' + f.stem if not a.files else f.stem: f for f in files},
                             a.out, per_row=a.per_row, hints=hints)
    print(f"wrote {path}: {len(files)} photos at full resolution")
    if a.score:
        every = sorted(find_images(a.photos))
        res = score_photos(learn, every)
        for name, m in res.items():
            print(f"{name:5} on {len(every)} photos at full resolution: PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f}, "
                  f"CF {m['colourfulness']:.2f} (ΔCF {m['delta_colourfulness']:+.2f}), "
                  f"blotch pixels {m['spurious_colour']:.2%}")
        return path, res
    return path


if __name__ == '__main__': main()

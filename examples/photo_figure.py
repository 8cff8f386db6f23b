"""The README's opening figure: held-out photos at full resolution, grey input | colourised | original.

Takes an exported colouriser (`learn.export`, e.g. `colourgan train --dataset imagenette ...` or the Imagenette
runs of examples/encoder_transfer.py) and photos it never trained on: by default the first photo of evenly spaced
classes of Imagenette's validation folder, at the size they are stored (160 px short side here), colourised with
`colourize` (the whole photo, any size). Rerun it after training to redraw the figure:

    python examples/photo_figure.py --model runs/encoder_transfer/imagenet_s42/final.pkl \\
        --photos ../shared/data/imagenette2-160/val --n 6 --out images/heldout_photos.png
"""
import argparse
from pathlib import Path

import numpy as np

from colourgan_fastai import load_colourizer, find_images
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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--model', required=True, help='an exported colouriser (.pkl)')
    p.add_argument('--photos', default='../shared/data/imagenette2-160/val',
                   help='a folder of held-out photos (class subfolders allowed)')
    p.add_argument('--files', nargs='+', help='these photos instead of picking from --photos')
    p.add_argument('--n', type=int, default=6); p.add_argument('--skip', type=int, default=0)
    p.add_argument('--per-row', type=int, default=2, help='photos per row of the figure')
    p.add_argument('--out', default='images/heldout_photos.png')
    a = p.parse_args(argv)
    learn = load_colourizer(a.model)
    files = [Path(f) for f in a.files] if a.files else pick_photos(a.photos, a.n, a.skip)
    path = comparison_figure(learn, {f.parent.name + '/' + f.stem if not a.files else f.stem: f for f in files},
                             a.out, per_row=a.per_row)
    print(f"wrote {path}: {len(files)} photos at full resolution")
    return path


if __name__ == '__main__': main()

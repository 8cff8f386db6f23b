"""Does `colourize` (the path the CLI, the web page and users take) score what the model scores?

CIFAR-10: every test image at the training size, once through the model's own forward pass (L of the 8-bit image,
G(L), decoded as in validation) and once through `colourize` (8-bit RGB out), scored against the truth: PSNR, SSIM,
colourfulness, ΔCF and the top-1 of an independent judge (the CIFAR-10 ResNet-32).
Photos: every photo under --photos, the model at its render size (the photo resized so its short side is the
training size, forward pass) against `colourize`'s full-resolution output (chroma predicted at that render size and
put on the full-resolution L), each scored against the truth at its own resolution.
`--variant` switches the render border (reflect padding) to compare the choices the library made.

    python examples/studies/colourize_parity/parity.py --model runs/cifar.pkl --cifar ../shared/data
    python examples/studies/colourize_parity/parity.py --model runs/photos.pkl --photos ../shared/data/imagenette2-160/val
"""
import argparse
import json
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from fastprogress.fastprogress import progress_bar

import colourgan_fastai.inference as inf
from colourgan_fastai import load_colourizer, colourize_many, resnet20_cifar
from colourgan_fastai.images import find_images, load_rgb
from colourgan_fastai.lab import encode_lab, decode_lab
from colourgan_fastai.metrics import psnr, ssim, colourfulness


@contextmanager
def variant(name):
    "'library': the library's rule; 'always-pad': reflect-pad every render, as before; 'never-pad': no border."
    old = inf._border
    if name == 'always-pad': inf._border = lambda h, w, size=None: inf._reflect_border(h, w)
    if name == 'never-pad': inf._border = lambda h, w, size=None: 0
    try: yield
    finally: inf._border = old


def _t(ims): return torch.stack([torch.from_numpy(np.asarray(im, np.float32) / 255).permute(2, 0, 1) for im in ims])


def _scores(pred, truth, judge=None, labels=None):
    s = dict(psnr=psnr(pred, truth), ssim=ssim(pred, truth), cf=colourfulness(pred), true_cf=colourfulness(truth))
    if judge is not None:
        m, sd = (torch.tensor(v).view(1, 3, 1, 1) for v in judge.stats)
        with torch.no_grad(): s['top1'] = (judge((pred - m) / sd).argmax(1) == labels).float()
    return s


def _summary(rows):
    cat = {k: torch.cat([r[k] for r in rows]) for k in rows[0]}
    out = {k: cat[k].mean().item() for k in cat if k != 'true_cf'}
    out['dcf'] = abs(out['cf'] - cat['true_cf'].mean().item())
    if 'top1' in out: out['top1'] *= 100
    return out


def cifar(learn, root, judge_file, bs=250, n=None):
    G = learn.model.eval()
    files = sorted(find_images(Path(root) / 'cifar10' / 'test'))[:n]
    classes = sorted({f.parent.name for f in files})
    labels = torch.tensor([classes.index(f.parent.name) for f in files])
    judge = resnet20_cifar(judge_file, depth=32).eval() if judge_file else None
    fwd, col = [], []
    for k in progress_bar(range(0, len(files), bs)):
        ims = [load_rgb(f) for f in files[k:k + bs]]
        truth = _t(ims)
        with torch.inference_mode():
            L_, _ = encode_lab(truth)
            pred = decode_lab(L_, G(L_))
        lab = labels[k:k + bs]
        fwd.append(_scores(pred, truth, judge, lab))
        col.append(_scores(_t(colourize_many(learn, ims, bs=bs)), truth, judge, lab))
    return {'forward pass': _summary(fwd), 'colourize': _summary(col)}


def photos(learn, folder, n=None, bs=32):
    G = learn.model.eval()
    size = min(G.img_size)
    files = sorted(find_images(folder))[:n]
    small, full = [], []
    for k in progress_bar(range(0, len(files), bs)):
        ims = [load_rgb(f) for f in files[k:k + bs]]
        for im, out in zip(ims, colourize_many(learn, ims, bs=bs)):
            w, h = im.size
            s = size / min(w, h)
            sw, sh = max(8, round(w * s / 8) * 8), max(8, round(h * s / 8) * 8)
            low = _t([im.resize((sw, sh), Image.BICUBIC)])
            with torch.inference_mode():
                L_, _ = encode_lab(low)
                small.append(_scores(decode_lab(L_, G(L_)), low))
            full.append(_scores(_t([out]), _t([im])))
    return {'model at its render size': _summary(small), 'colourize, full resolution': _summary(full)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--model', required=True, help='an exported colouriser (.pkl)')
    p.add_argument('--cifar', help='the folder holding cifar10/ (scores its test split)')
    p.add_argument('--judge', default='../shared/weights/resnet32-d509ac18.th')
    p.add_argument('--photos', help='a folder of held-out photos')
    p.add_argument('--n', type=int, help='only the first N images')
    p.add_argument('--variants', nargs='+', default=['library'], choices=['library', 'always-pad', 'never-pad'])
    p.add_argument('--json', help='write the results here')
    a = p.parse_args(argv)
    torch.set_num_threads(2)
    learn = load_colourizer(a.model)
    res = {}
    for v in a.variants:
        with variant(v):
            if a.cifar: res[f'cifar10 / {v}'] = cifar(learn, a.cifar, a.judge, n=a.n)
            if a.photos: res[f'photos / {v}'] = photos(learn, a.photos, n=a.n)
    for name, rows in res.items():
        for path, m in rows.items():
            print(f"{name:24} {path:28} " + '  '.join(f"{k} {v:.4f}" for k, v in m.items()))
    if a.json: Path(a.json).write_text(json.dumps(res, indent=1))
    return res


if __name__ == '__main__': main()

"""Colour hints, measured: does a hinted U-Net cost anything without hints, how much do hints help, do they act
where they are put, and what do they cost in training time?

For each data set and seed it trains two U-Nets at the same budget (L1, one-cycle; the ResNet-20 CIFAR encoder, and for photos also the photo colouriser's ImageNet MobileNetV2),
one without hints and one with `hints=True` (training hints sampled from the truth by `HintSampler`), and scores
both on held-out images (CIFAR-10: the test set at 32 px; Imagenette: validation photos at 96 px) with 0, 1, 2, 5,
10 and 20 hints per image sampled from the truth (seeded, the same hints for every model): PSNR, SSIM,
colourfulness, ΔCF and spurious-colour (blotch) pixels. Locality: one random hint per validation image; the mean
change of ab (|Δab|, ab units) within 5 px of the point against the mean change in the half of the photo farther
from it. Results go to <out>/results.json (a run already there is kept: the script resumes), each model to
<out>/<data set>_seed<n>_<plain|hints>.pkl.

    python examples/studies/hints/hints_study.py --data ../shared/data --out runs/hints_study
    python examples/studies/hints/report.py runs/hints_study/results.json     # table + curve
"""
import argparse
import json
import time
from pathlib import Path

import torch

from colourgan_fastai import cifar10_dls, imagenette_dls, colour_learner, resnet20_cifar, score_predictions
from colourgan_fastai.hints import sample_hints
from colourgan_fastai.metrics import PSNR, SSIM, Colourfulness, DeltaColourfulness, SpuriousColour

HINT_COUNTS = (0, 1, 2, 5, 10, 20)
SETTINGS = {   # the training budget, the same for the hint-free and the hinted U-Net
    'cifar10': dict(size=32, bs=64, n_train=8000, n_valid=None, epochs=3, lr=2e-3, encoder='resnet20'),
    'imagenette': dict(size=96, bs=32, n_train=2000, n_valid=500, epochs=3, lr=2e-3, encoder='resnet20'),
    # the photo colouriser's own encoder (ImageNet MobileNetV2, stride 32: its middle sees the whole photo)
    'imagenette_mobilenet': dict(size=96, bs=32, n_train=2000, n_valid=500, epochs=3, lr=2e-3, encoder='mobilenet_v2'),
}


def dls_for(name, data, seed):
    s = SETTINGS[name]
    make = cifar10_dls if name == 'cifar10' else imagenette_dls
    return make(data, n_train=s['n_train'], size=s['size'], bs=s['bs'], seed=seed, n_valid=s['n_valid'])


def metrics(): return [PSNR(), SSIM(), Colourfulness(), DeltaColourfulness(), SpuriousColour()]


def score(model, dl, n, seed=0):
    "Metrics on `dl` with `n` seeded truth hints per image (0: none)."
    g = torch.Generator().manual_seed(seed)
    model.eval()
    predict = (lambda L, ab: model(L)) if n == 0 else (lambda L, ab: model(L, *sample_hints(ab, n, generator=g)))
    return score_predictions(dl, predict, metrics())


def locality(model, dl, seed=0, radius=5):
    "Mean |Δab| (ab units) within `radius` px of one random hint and in the half of the image farther from it."
    g = torch.Generator().manual_seed(seed)
    near, far = [], []
    model.eval()
    with torch.inference_mode():
        for L_, ab in dl:
            hint, mask = sample_hints(ab, 1, generator=g)
            d = ((model(L_, hint, mask) - model(L_)) * 110).norm(dim=1)              # (N, H, W)
            H, W = d.shape[-2:]
            yy, xx = torch.meshgrid(torch.arange(H).float(), torch.arange(W).float(), indexing='ij')
            for k in range(len(d)):
                ys, xs = mask[k, 0].nonzero(as_tuple=True)
                dist = ((yy - ys.float().mean()) ** 2 + (xx - xs.float().mean()) ** 2).sqrt()
                near.append(d[k][dist <= radius].mean().item())
                far.append(d[k][dist > dist.median()].mean().item())
    n, f = sum(near) / len(near), sum(far) / len(far)
    return {'near': n, 'far': f, 'far_over_near': f / n}


def run_one(name, s, data, seed, hints, weights, export=None):
    "Train and score one U-Net on data set `name` with settings `s` (SETTINGS[name], possibly changed)."
    torch.manual_seed(seed)
    dls = dls_for(name, data, seed)
    arch = (dict(arch=resnet20_cifar(weights['resnet20'])) if s['encoder'] == 'resnet20' else
            dict(arch=s['encoder'], weights=weights[s['encoder']]))
    learn = colour_learner(dls, hints=hints, **arch)
    t = time.perf_counter()
    learn.fit_one_cycle(s['epochs'], s['lr'])
    train_s = time.perf_counter() - t
    model = learn.model
    res = {'train_s': train_s, 'n_train': len(dls.train_ds), 'n_valid': len(dls.valid_ds),
           'scores': {n: score(model, dls.valid, n) for n in (HINT_COUNTS if hints else (0,))}}
    if hints: res['locality'] = locality(model, dls.valid)
    if export: learn.export(export)
    return res


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--data', default='../shared/data', help='the folder holding cifar10/ and imagenette2-160/')
    p.add_argument('--weights', default='../shared/weights/resnet20-12fca82f.th', help='the ResNet-20 encoder')
    p.add_argument('--mobilenet-weights', default='../shared/weights/mobilenet_v2_imagenet.pth',
                   help='the ImageNet MobileNetV2 encoder (the photo colouriser\'s)')
    p.add_argument('--out', default='runs/hints_study')
    p.add_argument('--datasets', nargs='+', default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument('--seeds', nargs='+', type=int, default=[0, 1])
    p.add_argument('--epochs', type=int, help='override the data set\'s epochs (a longer budget; use its own --out)')
    p.add_argument('--kinds', nargs='+', default=['plain', 'hints'], choices=['plain', 'hints'])
    a = p.parse_args()
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    weights = {'resnet20': a.weights, 'mobilenet_v2': a.mobilenet_weights}
    f = out / 'results.json'
    results = json.loads(f.read_text()) if f.exists() else {}
    for name in a.datasets:
        settings = {**SETTINGS[name], **({'epochs': a.epochs} if a.epochs else {})}
        for seed in a.seeds:
            for hints in [k == 'hints' for k in a.kinds]:
                key = f"{name}/seed{seed}/{'hints' if hints else 'plain'}"
                if key in results: continue
                print(f"== {key}", flush=True)
                export = (out / f"{key.replace('/', '_')}.pkl").absolute()
                results[key] = {**run_one(name, settings, a.data, seed, hints, weights, export), 'settings': settings}
                print(json.dumps(results[key]), flush=True)
                f.write_text(json.dumps(results, indent=1))


if __name__ == '__main__':
    main()

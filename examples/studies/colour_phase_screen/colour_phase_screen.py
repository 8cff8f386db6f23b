"""Screen variants of the semantic recipe's colour phase (README, Case 1: the table under the ablation).

Each variant starts from the same phase-1 model (`--init`, e.g. runs/cifar10/semantic/phase1.pth from
examples/cifar10_same_dataset.py), trains `--epochs` on `--n-train` CIFAR-10 training images and is scored on
2,000 *other* training images (the tuning set: fidelity, colourfulness and the ResNet-20's own top-1, which is
what variants are chosen on) and, to report only, on the 5,000 test images with the independent ResNet-32 judge.
`--flip-average` and `--calibrate GAP` score the variant with test-time flip averaging and with its chroma gain
calibrated on the tuning images (the tuning set's colourfulness then says only what GAP asked for).
By default the tuning images are one fixed split inside phase 1's training images (steps 14-16); with
`--tune-set-aside` they are the ones a phase 1 run with `examples/cifar10_same_dataset.py --set-aside` never saw
(step 17), and `--choose` applies step 17's rule to the variants scored so.

    python bench/colour_phase_screen.py --name cf15_psnr02 --cf 1.5 --psnr 0.2      # one variant -> runs/screen/
    python bench/colour_phase_screen.py --table                                      # the markdown table of all
    python bench/colour_phase_screen.py --choose                                     # step 17's rule picks one
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def parser():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--name', help='the variant (its results go to <out>/<name>.json)')
    p.add_argument('--table', action='store_true', help='print the table of every variant in --out')
    p.add_argument('--choose', action='store_true', help="print the variant in --out that step 17's rule chooses")
    p.add_argument('--data', default='../shared/data'); p.add_argument('--out', default='runs/screen')
    p.add_argument('--weights', default='../shared/weights/resnet20-12fca82f.th')
    p.add_argument('--judge', default='../shared/weights/resnet32-d509ac18.th')
    p.add_argument('--init', default='runs/cifar10/semantic/phase1.pth', help='the phase-1 model to start from')
    p.add_argument('--n-train', type=int, default=12000); p.add_argument('--epochs', type=int, default=1)
    p.add_argument('--lr', type=float, default=3e-4); p.add_argument('--sem', type=float, default=0.05)
    p.add_argument('--feature', type=float, default=0.,
                   help="FeatureLoss weight through the ResNet-20 (0.3 in today's recipe; the table's rows ran with 0)")
    p.add_argument('--class-weight', type=float, default=0., help='ClassGuidanceLoss weight (a U-Net with a class '
                   "guide, as the phase-1 model of cifar10_same_dataset.py --class-weight)")
    p.add_argument('--cf', type=float, default=1., help='ColourfulnessLoss weight (batch-mean gap)')
    p.add_argument('--cf-per-image', type=float, default=0., help='weight of a per-image colourfulness gap')
    p.add_argument('--psnr', type=float, default=0., help='PSNRLoss weight')
    p.add_argument('--n-tune', type=int, default=2000, help='held-out training images that choose the variant')
    p.add_argument('--n-test', type=int, help='test images to report on (default: all 5,000)')
    p.add_argument('--tune-set-aside', action='store_true',
                   help='tune on the --n-tune images that hold_out(seed=--seed) sets aside from all 50,000, which a '
                        'phase 1 by examples/cifar10_same_dataset.py --set-aside N (same N and seed) never saw '
                        '(default: one fixed split for every seed, inside phase 1\'s training images)')
    p.add_argument('--seed', type=int, default=42)
    p.add_argument('--flip-average', action='store_true', help='score with test-time flip averaging (use_flip_average)')
    p.add_argument('--calibrate', type=float, metavar='GAP', help='after training, calibrate the chroma gain on the '
                   "tuning images so that their colourfulness is the truth's minus GAP (calibrate_colourfulness)")
    p.add_argument('--export', metavar='PKL', help="also export the variant's generator (learn.export) to PKL")
    return p


def per_image_cf_loss(weight):
    "The rejected variant: mean over images of |CF(pred) - CF(truth)| / 100 instead of the batch means' gap."
    from colourgan_fastai import LossTerm
    from colourgan_fastai.lab import decode_lab
    from colourgan_fastai.metrics import colourfulness

    class PerImageColourfulnessGap(LossTerm):
        name = 'loss_cf_per_image'
        def term(self, L_, pred, target):
            L_, pred, target = (t.as_subclass(torch.Tensor) for t in (L_, pred, target))
            with torch.no_grad(): cf_true = colourfulness(decode_lab(L_, target))
            return (colourfulness(decode_lab(L_, pred)) - cf_true).abs().mean() / 100
    return PerImageColourfulnessGap(weight)


def loss_columns(learn):
    "The loss terms the last fit trained with, by their recorder columns (e.g. ['loss_cf', 'loss_psnr'])."
    return sorted(n for n in learn.recorder.metric_names if n.startswith('loss_'))


def tuning_split(a):
    "(tuning images, the others): the images variants are chosen on, and the images their colour phase trains on."
    from colourgan_fastai import cifar10_dls, hold_out
    if a.tune_set_aside:                       # the images `cifar10_same_dataset.py --set-aside` kept from phase 1
        rest, tune = hold_out(cifar10_dls(a.data, n_train=None, seed=a.seed, cache=False), a.n_tune, seed=a.seed)
        return list(tune.items), list(rest.train.items)
    from fastai.vision.all import get_image_files  # steps 14-16: one split for every seed, inside phase 1's images
    train = sorted(get_image_files(Path(a.data) / 'cifar10' / 'train'))
    idx = np.random.RandomState(0).permutation(len(train))
    return [train[i] for i in sorted(idx[:a.n_tune])], [train[i] for i in sorted(idx[a.n_tune:])]


def screen(a):
    from fastai.torch_core import set_seed
    from colourgan_fastai import cifar10_dls, colour_learner, colour_metrics, resnet20_cifar, score_predictions, train_semantic_colour, use_flip_average, calibrate_colourfulness
    from colourgan_fastai.data import dls_from_lists
    sys.path.insert(0, str(ROOT / 'examples'))
    import experiment as ex
    from cifar10_same_dataset import Top1, CLASSES
    set_seed(a.seed)
    tune, rest = tuning_split(a)                                          # the same for every variant
    pick = np.random.RandomState(a.seed).choice(len(rest), min(a.n_train, len(rest)), replace=False)
    dls = dls_from_lists([rest[i] for i in sorted(pick)], tune, 32, 64, seed=a.seed, cache=True)
    learn = colour_learner(dls, arch=resnet20_cifar(a.weights), metrics=colour_metrics(),
                           class_guidance=len(CLASSES) if a.class_weight else None)
    learn.load(Path(a.init).with_suffix('').absolute(), with_opt=False)
    own = resnet20_cifar(a.weights)
    t0 = time.time()
    train_semantic_colour(learn, 0, a.epochs, colour_lr=a.lr, classifier=own, semantic_weight=a.sem,
                          feature_net=own, feature_weight=a.feature, class_net=own, class_weight=a.class_weight,
                          colourfulness_weight=a.cf, psnr_weight=a.psnr,         # the recipe's colour phase alone
                          colour_cbs=[per_image_cf_loss(a.cf_per_image)] if a.cf_per_image else [])
    res = dict(args=vars(a), train_s=time.time() - t0, terms=loss_columns(learn), rows={})
    if a.flip_average: use_flip_average(learn)
    if a.calibrate is not None: res['chroma_gain'] = calibrate_colourfulness(learn, dls.valid, gap=a.calibrate)
    if a.export: Path(a.export).parent.mkdir(parents=True, exist_ok=True); learn.export(Path(a.export).absolute())
    predict = ex._predict_with(learn)
    tune_labels = [CLASSES.index(Path(f).parent.name) for f in tune]
    for row, fn in (('tune', predict), ('tune_grey', lambda L, ab: ab * 0), ('tune_truth', lambda L, ab: ab)):
        res['rows'][row] = score_predictions(dls.valid, fn, colour_metrics() + [Top1(own, tune_labels)])
    test = cifar10_dls(a.data, n_train=64, bs=64, n_valid=a.n_test).valid
    judge = resnet20_cifar(a.judge, depth=32)
    test_labels = [CLASSES.index(Path(f).parent.name) for f in test.items]
    res['rows']['test'] = score_predictions(test, predict, colour_metrics() + [Top1(judge, test_labels)])
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    ex.save_json(out / f'{a.name}.json', res)
    return res


def table(out):
    lines = ['| variant | tuning: PSNR | SSIM | CF | ΔCF | ResNet-20 top-1 | test: PSNR | SSIM | ΔCF | ResNet-32 top-1 |',
             '|---|---|---|---|---|---|---|---|---|---|']
    for f in sorted(Path(out).glob('*.json')):
        t, s = (json.loads(f.read_text())['rows'][k] for k in ('tune', 'test'))
        lines.append(f"| {f.stem} | {t['psnr']:.2f} | {t['ssim']:.4f} | {t['colourfulness']:.2f} | "
                     f"{t['delta_colourfulness']:.2f} | {t['top1']:.1%} | {s['psnr']:.2f} | {s['ssim']:.4f} | "
                     f"{s['delta_colourfulness']:.2f} | {s['top1']:.1%} |")
    return '\n'.join(lines)


def keeps_fidelity(row, grey):
    "The goal's fidelity lines on one set of images: PSNR >= grey's - 0.5 dB and SSIM >= grey's - 0.005."
    return row['psnr'] >= grey['psnr'] - 0.5 and row['ssim'] >= grey['ssim'] - 0.005


def choose(out):
    """Step 17's rule, on the tuning images alone (the goal's lines there, the ResNet-20 standing in for the judge;
    the colour amount is the same for all, set by `--calibrate`): of the variants in `out` that `keeps_fidelity`,
    the one with the highest ResNet-20 top-1; if none does, the one with the highest PSNR.
    Returns (name, {variant: keeps fidelity})."""
    runs = {f.stem: json.loads(f.read_text())['rows'] for f in sorted(Path(out).glob('*.json'))}
    runs = {k: r for k, r in runs.items() if 'tune_grey' in r}                # scored with the tuning set's grey
    if not runs: raise SystemExit(f"no variant in {out} was scored against the tuning images' grey")
    ok = {k: keeps_fidelity(r['tune'], r['tune_grey']) for k, r in runs.items()}
    kept = [k for k in runs if ok[k]]
    by = 'top1' if kept else 'psnr'
    return max(kept or runs, key=lambda k: runs[k]['tune'][by]), ok


def main(argv=None):
    a = parser().parse_args(argv)
    if a.table: print(table(a.out)); return
    if a.choose:
        name, ok = choose(a.out)
        for k, v in ok.items(): print(f"{k}: {'keeps' if v else 'misses'} the fidelity lines on the tuning images")
        print(f"chosen: {name}"); return name
    if not a.name: raise SystemExit('--name is required to run a variant')
    r = screen(a)
    print(json.dumps(r['rows'], indent=1))
    return r


if __name__ == '__main__': main()

"""How far inside the colour-amount line to aim the chroma gain (README, Case 1, step 19), from training images only.

`calibrate_colourfulness` fits the gain on N set-aside training images so that *their* colourfulness is the truth's
minus GAP; on other images (the test set) the gap lands near GAP, not on it, because two samples of images differ.
This measures that sampling error on the set-aside images alone: it splits them into random halves many times, fits
the gain on one half and reads the gap on the other, then scales the spread of that error to a gain fitted on all
N and read on `--n-test` images. Aiming `--k` standard deviations inside the goal's line (|ΔCF| <= `--line`) keeps a
fitted model on the right side of it on about 84 % of samples for k = 1, 97.7 % for k = 2 (normal errors,
one-sided). It also reports what the colour costs in PSNR on those images, from the same predictions, over the range
of gaps: every step of colour is paid for in PSNR, whose line the goal also draws. No test image and no judge is
used. On step 19's seed-42 model the error is ± 0.51 (1 sd): k = 2 asks for gap -0.05, more colour than the truth,
at 0.15 dB of PSNR on these images, more than any run's margin on the PSNR line; k = 1 gives 0.5, CIFAR10_RECIPE's.

    python bench/calibration_margin.py --model runs/cifar10/semantic/final.pkl --seed 42     # the example's run
"""
import argparse
import json
from pathlib import Path

import numpy as np
import torch


def parser():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--model', required=True, help="an exported colouriser (learn.export), e.g. the example's final.pkl")
    p.add_argument('--data', default='../shared/data')
    p.add_argument('--n-train', type=int, default=50000, help="the run's training images (cifar10_dls(n_train=))")
    p.add_argument('--set-aside', type=int, default=2000, help='the images the gain is fitted on: hold_out(n, seed)')
    p.add_argument('--seed', type=int, default=42, help="the run's seed (it chose the set-aside images)")
    p.add_argument('--n-test', type=int, default=5000, help='how many images the gap is then read on')
    p.add_argument('--line', type=float, default=1., help="the goal's colour-amount line, |ΔCF| <= line")
    p.add_argument('--k', type=float, default=1., help='aim k standard deviations of the sampling error inside it')
    p.add_argument('--splits', type=int, default=400); p.add_argument('--bs', type=int, default=250)
    p.add_argument('--out', help='write the result as JSON here too')
    return p


GAINS = np.linspace(0.8, 1.6, 81)


def per_image(model, dl, gains=GAINS):
    """Per set-aside image: the truth's colourfulness (N,), and the prediction's colourfulness and PSNR at each gain
    (N, len(gains)), the generator's other eval-mode settings (flip averaging) as exported."""
    from colourgan_fastai.metrics import colourfulness
    from colourgan_fastai.lab import decode_lab
    from colourgan_fastai.models import colour_unet_of, as_plain
    from colourgan_fastai.metrics import psnr as image_psnr
    G = colour_unet_of(model).eval()
    lo, hi = G.ab_range
    G.chroma_gain = 1.
    cf_true, cf, psnr = [], [], []
    with torch.inference_mode():
        for L_, ab in dl:
            L_, ab = as_plain(L_), as_plain(ab)
            pred, truth = G(L_), decode_lab(L_, ab)
            cf_true.append(colourfulness(truth))
            rgbs = [decode_lab(L_, (pred * g).clamp(lo, hi)) for g in gains]
            cf.append(torch.stack([colourfulness(r) for r in rgbs], 1))
            psnr.append(torch.stack([image_psnr(r, truth) for r in rgbs], 1))
    return torch.cat(cf_true).numpy(), torch.cat(cf).numpy(), torch.cat(psnr).numpy()


def gain_for(cf_true, cf, gap):
    "The gain (interpolated on GAINS) at which the mean of `cf` is the mean of `cf_true` minus `gap`."
    return float(np.interp(cf_true.mean() - gap, cf.mean(0), GAINS))


def transfer_errors(cf_true, cf, gap, splits, seed=0):
    "Fit on a random half, read on the other: the gap it lands at minus `gap`, for `splits` random halves."
    rng, n = np.random.default_rng(seed), len(cf_true)
    errs = []
    for _ in range(splits):
        i = rng.permutation(n); a, b = i[:n // 2], i[n // 2:]
        g = gain_for(cf_true[a], cf[a], gap)
        landed = cf_true[b].mean() - np.interp(g, GAINS, cf[b].mean(0))
        errs.append(landed - gap)
    return np.array(errs)


def margin(cf_true, cf, psnr, n_test=5000, line=1., k=1., splits=400):
    """The sampling error's standard deviation for a gain fitted on all these images and read on `n_test` others,
    the gap to aim at (`line` - k * sd, rounded down to 0.05) and the PSNR of these images at gaps 0 ... line."""
    n = len(cf_true)
    sd_half = transfer_errors(cf_true, cf, line, splits).std()
    sd = sd_half * np.sqrt((1 / n + 1 / n_test) / (4 / n))     # halves of n/2 each -> fitted on n, read on n_test
    aim = np.floor((line - k * sd) / 0.05 + 1e-9) * 0.05
    psnr_at = {f'{gap:g}': float(np.interp(gain_for(cf_true, cf, gap), GAINS, psnr.mean(0)))
               for gap in np.round(np.arange(0, line + 1e-9, 0.25), 2)}
    return dict(n=n, sd_half=float(sd_half), sd=float(sd), aim=float(aim), psnr_by_gap=psnr_at)


def main(argv=None):
    a = parser().parse_args(argv)
    from colourgan_fastai import load_colourizer, cifar10_dls, hold_out
    model = load_colourizer(a.model)
    dls = cifar10_dls(a.data, n_train=a.n_train, bs=a.bs, seed=a.seed, n_valid=64)
    _, aside = hold_out(dls, a.set_aside, seed=a.seed)
    r = margin(*per_image(model.model, aside), n_test=a.n_test, line=a.line, k=a.k, splits=a.splits)
    r['model'] = str(a.model)
    print(f"{a.model}: fitted on {r['n']} set-aside images and read on {a.n_test} others, the gap lands within "
          f"± {r['sd']:.3f} (1 sd; ± {r['sd_half']:.3f} between halves); aim at {r['aim']:.2f} to keep {a.k:g} sd "
          f"inside |ΔCF| <= {a.line:g}. PSNR of the set-aside images by gap: "
          + ', '.join(f'{g}: {v:.3f} dB' for g, v in r['psnr_by_gap'].items()))
    if a.out: Path(a.out).parent.mkdir(parents=True, exist_ok=True); Path(a.out).write_text(json.dumps(r, indent=1))
    return r


if __name__ == '__main__': main()

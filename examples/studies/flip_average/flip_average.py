"""Flip averaging on an exported colouriser (README, Case 2: *Flip averaging on photos*): the validation columns
with and without `use_flip_average`, blotch pixels included, and what it costs (forward passes timed side by side
in one run, medians of --repeats). Nothing is fitted here, so the validation images only score.

    python bench/flip_average.py --model runs/encoder_transfer_feat/imagenet-feat0.3_s42/final.pkl
    python bench/flip_average.py --model runs/screen_cal43/g_cal1.pkl --dataset cifar10 --size 32
"""
import argparse
import json
import statistics
import time
from pathlib import Path

import torch


def parser():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--model', required=True, help='a .pkl written by learn.export')
    p.add_argument('--dataset', choices=['imagenette', 'cifar10'], default='imagenette')
    p.add_argument('--data', default='../shared/data'); p.add_argument('--size', type=int, default=96)
    p.add_argument('--n-valid', type=int, help='a seeded subset of the validation images (default: all)')
    p.add_argument('--bs', type=int, default=64); p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--out', help='also write the results as JSON here')
    return p


def _forward_seconds(G, batches, repeats):
    "Median wall time of one pass of G over the batches (eval mode, no grad)."
    times = []
    with torch.inference_mode():
        for _ in range(repeats):
            t = time.perf_counter()
            for L_ in batches: G(L_)
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv=None):
    a = parser().parse_args(argv)
    from colourgan_fastai import load_colourizer, use_flip_average, imagenette_dls, cifar10_dls, colour_metrics, score_predictions, SpuriousColour
    from colourgan_fastai.models import as_plain
    make = imagenette_dls if a.dataset == 'imagenette' else cifar10_dls
    dl = make(a.data, n_train=a.bs, size=a.size, bs=a.bs, n_valid=a.n_valid).valid
    learn = load_colourizer(a.model)
    G = learn.model.eval()
    batches = [as_plain(L_) for L_, _ in dl]
    res = dict(model=str(a.model), dataset=a.dataset, n_valid=len(dl.dataset), rows={}, seconds={},
               threads=torch.get_num_threads())
    ways = {'plain': False, 'flip averaging': True}
    for name, on in ways.items():
        use_flip_average(learn, on)
        res['rows'][name] = score_predictions(dl, lambda L_, ab: G(L_), colour_metrics() + [SpuriousColour()])
    for name, on in ways.items():                     # timed after scoring: both passes see a warm model
        use_flip_average(learn, on)
        res['seconds'][name] = _forward_seconds(G, batches, a.repeats)
    res['time_ratio'] = res['seconds']['flip averaging'] / res['seconds']['plain']
    if a.out: Path(a.out).parent.mkdir(parents=True, exist_ok=True); Path(a.out).write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))
    return res


if __name__ == '__main__': main()

"""What do hints cost in training time? The same training batches, with and without hints, timed side by side.

Two U-Nets from the same initial weights (--arch: the ResNet-20 CIFAR encoder, or mobilenet_v2, the photo
colouriser's), one hint-free and one with `hints=True` (its
HintSampler samples hints for every training batch), each trained for one epoch over the same crops of the
embedded photos, alternating, --rounds times after a warm-up; prints the median seconds per epoch of each and
their ratio, for 32 px (bs 64) and 64 px (bs 32).

    python examples/studies/hints/cost.py --rounds 5
    python examples/studies/hints/cost.py --rounds 5 --arch mobilenet_v2 --sizes 64
    python examples/studies/hints/cost.py --rounds 5 --arch mobilenet_v2 --sizes 64 --recipe

--recipe: as `colourgan train` runs an epoch of the photo recipe's first phase: `FeatureLoss` 0.3 through an encoder
network (random weights: the same work), the validation metrics (the hinted U-Net's doubled into 10-hint columns)
on a validation set 0.4 times the training set (Imagenette's share), and the time of the validation counted.
"""
import argparse
import platform
import statistics
import time

import torch

from colourgan_fastai import colour_learner, sample_photos_dls, colour_metrics, FeatureLoss


def timed_fit(learn):
    t = time.perf_counter()
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    return time.perf_counter() - t


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--rounds', type=int, default=5)
    p.add_argument('--sizes', type=int, nargs='+', default=[32, 64], help='image sizes (the embedded photos: <= 64)')
    p.add_argument('--arch', default='resnet20_cifar', choices=['resnet20_cifar', 'mobilenet_v2'])
    p.add_argument('--recipe', action='store_true', help="the photo recipe's epoch: FeatureLoss, metrics, validation")
    a = p.parse_args()
    torch.set_num_threads(2)
    print(f"CPU: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads")
    for size in a.sizes:
        bs, n = (64, 64 * 12) if size <= 32 else (32, 32 * 8)
        dls = sample_photos_dls(size=size, n=int(n / (0.714 if a.recipe else 0.8)) + 1, bs=bs, cache=True)
        if not a.recipe: dls.valid = dls.valid.new(dls.valid.dataset[:bs])   # one validation batch: training timed
        torch.manual_seed(0)
        extra = dict(metrics=colour_metrics()) if a.recipe else {}
        plain = colour_learner(dls, a.arch, pretrained=False, **extra)
        hinted = colour_learner(dls, a.arch, pretrained=False, hints=True, **extra)
        hinted.model.load_state_dict(plain.model.state_dict(), strict=False)
        if a.recipe:
            from torchvision.models import mobilenet_v2
            from colourgan_fastai import resnet20_cifar
            net = (mobilenet_v2 if a.arch == 'mobilenet_v2' else resnet20_cifar)().eval()
            for learn in (plain, hinted): learn.add_cb(FeatureLoss(net, 0.3))
        timed_fit(plain); timed_fit(hinted)                            # warm-up
        times = {'plain': [], 'hints': []}
        for _ in range(a.rounds):
            times['plain'].append(timed_fit(plain)); times['hints'].append(timed_fit(hinted))
        m = {k: statistics.median(v) for k, v in times.items()}
        print(f"{a.arch}{' recipe epoch' if a.recipe else ''}, {size} px, bs {bs}, {len(dls.train)} batches "
              f"({len(dls.valid.dataset)} validation images): without hints {m['plain']:.2f} s, with hints "
              f"{m['hints']:.2f} s per epoch (medians of {a.rounds}): ratio {m['hints'] / m['plain']:.3f}")


if __name__ == '__main__':
    main()

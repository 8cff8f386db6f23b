"""Does bf16 mixed precision (`learn.to_bf16()`) cost quality? The same recipe, seeds and data in fp32 and in
bf16, scored on held-out images in fp32, with the wall time of each.

    python bench/precision_quality.py --data ../shared/data --weights ../shared/weights/resnet20-12fca82f.th

CIFAR-10 (CachedDL), ResNet-20 U-Net at 32 px, bs 64: `--epochs` L1 + `--gan-epochs` GAN epochs on `--n-train`
training images, scored on `--n-valid` test images (L1 on ab, PSNR, SSIM, colourfulness) after the L1 phase
(U-Net) and after the GAN phase, for each of `--seeds`.
"""
import argparse
import json
import time
import warnings


def run(precision, seed, a):
    from fastai.torch_core import set_seed
    from colourgan_fastai import cifar10_dls, colour_learner, resnet20_cifar, train_l1_then_gan, score_predictions
    set_seed(seed, reproducible=True)
    dls = cifar10_dls(a.data, n_train=a.n_train, n_valid=a.n_valid, bs=64, seed=42)      # same images every run
    dls.train.rng.seed(seed)
    learn = colour_learner(dls, arch=resnet20_cifar(a.weights))
    if precision == 'bf16': learn.to_bf16()
    def score():                                                      # in fp32 either way, G in eval mode
        G = learn.model.eval()
        return score_predictions(dls.valid, lambda L, ab: G(L).float())
    res = {}
    t = time.perf_counter()
    with learn.no_bar(), learn.no_logging():
        train_l1_then_gan(learn, a.epochs, a.gan_epochs, after_l1=lambda l: res.update(unet=score()))
    res['wall_s'] = time.perf_counter() - t                           # includes the U-Net scoring (equal for both)
    res['gan'] = score()
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--data', required=True); p.add_argument('--weights', required=True)
    p.add_argument('--n-train', type=int, default=4000); p.add_argument('--n-valid', type=int, default=1000)
    p.add_argument('--epochs', type=int, default=3); p.add_argument('--gan-epochs', type=int, default=2)
    p.add_argument('--seeds', type=int, nargs='+', default=[42, 43], help='one run per seed and precision (the '
                   'spread between seeds is the yardstick for the fp32/bf16 difference)')
    p.add_argument('--json')
    a = p.parse_args(argv)
    warnings.simplefilter('ignore')
    res = {f'{prec} seed {seed}': run(prec, seed, a) for seed in a.seeds for prec in ('fp32', 'bf16')}
    print("| run | wall (s) | U-Net L1 | U-Net PSNR | U-Net CF | GAN L1 | GAN PSNR | GAN SSIM | GAN CF |")
    print("|---|---|---|---|---|---|---|---|---|")
    for k, r in res.items():
        u, g = r['unet'], r['gan']
        print(f"| {k} | {r['wall_s']:.0f} | {u['l1']:.4f} | {u['psnr']:.2f} | {u['colourfulness']:.2f} | {g['l1']:.4f} | "
              f"{g['psnr']:.2f} | {g['ssim']:.4f} | {g['colourfulness']:.2f} |")
    wall = {prec: sum(r['wall_s'] for k, r in res.items() if k.startswith(prec)) for prec in ('fp32', 'bf16')}
    print(f"bf16 / fp32 wall time: {wall['bf16'] / wall['fp32']:.2f}")
    if a.json:
        with open(a.json, 'w') as f: json.dump(res, f, indent=1)
    return res


if __name__ == '__main__': main()

"""Does bf16 mixed precision (`learn.to_bf16()`) cost quality? The same recipe, seeds and data in fp32 and in
bf16, scored on held-out images in fp32, with the wall time of each.

    python bench/precision_quality.py --data ../shared/data --weights ../shared/weights/resnet20-12fca82f.th

CIFAR-10 (CachedDL), ResNet-20 U-Net at 32 px, bs 64: `--epochs` L1 + `--gan-epochs` GAN epochs on `--n-train`
training images, scored on `--n-valid` test images (L1 on ab, PSNR, SSIM, colourfulness).
"""
import argparse
import json
import time
import warnings


def run(precision, a):
    from fastai.torch_core import set_seed
    from colourgan_fastai import cifar10_dls, colour_learner, resnet20_cifar, train_l1_then_gan, score_predictions
    set_seed(a.seed, reproducible=True)
    dls = cifar10_dls(a.data, n_train=a.n_train, n_valid=a.n_valid, bs=64, seed=a.seed)
    dls.train.rng.seed(a.seed)
    learn = colour_learner(dls, arch=resnet20_cifar(a.weights))
    if precision == 'bf16': learn.to_bf16()
    t = time.perf_counter()
    with learn.no_bar(), learn.no_logging(): train_l1_then_gan(learn, a.epochs, a.gan_epochs)
    wall = time.perf_counter() - t
    G = learn.model.eval()
    scores = score_predictions(dls.valid, lambda L, ab: G(L).float())        # scored in fp32 either way
    return {'wall_s': wall, **scores}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--data', required=True); p.add_argument('--weights', required=True)
    p.add_argument('--n-train', type=int, default=4000); p.add_argument('--n-valid', type=int, default=1000)
    p.add_argument('--epochs', type=int, default=3); p.add_argument('--gan-epochs', type=int, default=2)
    p.add_argument('--seed', type=int, default=42); p.add_argument('--json')
    a = p.parse_args(argv)
    warnings.simplefilter('ignore')
    res = {prec: run(prec, a) for prec in ('fp32', 'bf16')}
    print("| precision | wall (s) | L1 | PSNR | SSIM | colourfulness |\n|---|---|---|---|---|---|")
    for prec, r in res.items():
        print(f"| {prec} | {r['wall_s']:.0f} | {r['l1']:.4f} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['colourfulness']:.2f} |")
    print(f"bf16 / fp32 wall time: {res['bf16']['wall_s'] / res['fp32']['wall_s']:.2f}")
    if a.json:
        with open(a.json, 'w') as f: json.dump(res, f, indent=1)
    return res


if __name__ == '__main__': main()

"""Case 2: the encoder is pretrained on a different data set and resolution (96 px).

The same L1 -> GAN recipe at 96 px on STL-10 (`--dataset stl10`, for users who have it) or Imagenette
(`--dataset imagenette`: 5,000 training photos via untar_data(URLs.IMAGENETTE_160)), comparing two generators that
differ only in the encoder: the CIFAR-10 ResNet-20 (low resolution) against an ImageNet encoder (torchvision's
ResNet-18 when online, or MobileNetV2 from a weights file). Writes images/diff_encoders_<dataset>.gif,
images/encoder_loss_differences.png and images/encoder_transfer_metrics.md.

    python examples/encoder_transfer.py --dataset imagenette --data ../shared/data \
        --imagenet-arch mobilenet_v2 --imagenet-weights ../shared/weights/mobilenet_v2_imagenet.pth --budget-minutes 60
"""
import json
import sys
from pathlib import Path

from fastai.torch_core import set_seed

sys.path.insert(0, str(Path(__file__).parent))
import experiment as ex
from colourgan_fastai import stl10_dls, imagenette_dls, colour_learner, colour_metrics, resnet20_cifar


def main(argv=None):
    p = ex.parser(__doc__.split('\n')[0], 'runs/encoder_transfer')
    p.add_argument('--dataset', choices=['stl10', 'imagenette'], default='imagenette')
    p.add_argument('--cifar-weights', default='../shared/weights/resnet20-12fca82f.th')
    p.add_argument('--imagenet-arch', default='resnet18', help='resnet18 (downloads weights) or mobilenet_v2')
    p.add_argument('--imagenet-weights', help='state dict file for --imagenet-arch (no download)')
    p.add_argument('--size', type=int, default=96)
    a = p.parse_args(argv)
    images, out = Path(a.images), Path(a.out)
    images.mkdir(parents=True, exist_ok=True)
    kw = dict(n_train=a.n_train, size=a.size, bs=a.bs or 32, seed=a.seed, n_valid=a.n_valid)
    dls = stl10_dls(a.data, **kw) if a.dataset == 'stl10' else imagenette_dls(a.data, **kw)
    encoders = {'ResNet-20 (CIFAR-10)': dict(arch=resnet20_cifar(a.cifar_weights)),
                f'{a.imagenet_arch} (ImageNet)': dict(arch=a.imagenet_arch, weights=a.imagenet_weights,
                                                      pretrained=True)}
    half = type(a)(**{**vars(a), 'budget_minutes': a.budget_minutes / 2})
    rows, curves, stages, plan = {}, {}, [], {}
    L_ = ab = None
    for name, kwargs in encoders.items():
        set_seed(a.seed)
        learn = colour_learner(dls, metrics=colour_metrics(), **kwargs)
        run_dir = out / name.split()[0]
        if a.figures_only: unet_state, _ = ex.load_run(learn, run_dir)
        else:
            E, G = ex.plan_epochs(learn, half)
            plan[name] = (E, G)
            unet_state, c = ex.train(learn, E, G, run_dir)
            learn.remove_cbs(learn.cbs.filter(lambda cb: type(cb).__name__ == 'GANColourizer'))
            table = ex.score_table(learn, unet_state)
            rows['grey (ab = 0)'] = table['grey (ab = 0)']
            rows[f'{name}: U-Net only'] = table['U-Net only (L1)']
            rows[f'{name}: U-Net + GAN'] = table['U-Net + GAN']
            rows['truth'] = table.pop('truth')
            curves[f'{name}: U-Net'] = (list(range(1, E + 1)), c['unet'])
            curves[f'{name}: GAN'] = (list(range(E + 1, E + G + 1)), c['gan'])
        if L_ is None: L_, ab = ex.fixed_batch(learn)
        st = ex.stage_predictions(learn, unet_state, L_, ab)
        stages.append((f'{name.split()[0]} + GAN', st[2][1]))
    table = ''
    if a.figures_only:
        saved = json.loads((out / 'metrics.json').read_text())
        rows, curves = saved['rows'], saved['curves']
    else:
        rows = {k: rows[k] for k in [r for r in rows if r != 'truth'] + ['truth']}
        title = (f"{a.dataset} at {a.size} px: {len(dls.train_ds)} training / {len(dls.valid_ds)} validation images; "
                 + '; '.join(f"{n}: {e} L1 + {g} GAN epochs" for n, (e, g) in plan.items()))
        table = ex.markdown_table(rows, title)
        (images / 'encoder_transfer_metrics.md').write_text(table)
        ex.save_json(out / 'metrics.json', dict(rows=rows, curves=curves, plan=plan))
    ex.write_gif(images / f'diff_encoders_{a.dataset}.gif', L_, [('grey input', ab * 0), *stages, ('truth', ab)], scale=1)
    ex.plot_curves(images / 'encoder_loss_differences.png', curves, f'{a.dataset}, {a.size} px: validation L1 by encoder')
    print(table)
    return rows


if __name__ == '__main__': main()

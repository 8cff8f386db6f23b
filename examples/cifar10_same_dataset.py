"""Case 1: the encoder is pretrained on the same data set (CIFAR-10, 32 px).

8,000 training images (seeded subset) of CIFAR-10, validation on the test folder; generator = DynamicUnet on the
CIFAR-10 ResNet-20; L1 pretraining, then GANColourizer fine-tuning. Writes images/cifar_recolourized.gif,
images/cifar10_unet_vs_gan_loss.png and images/cifar10_metrics.md, the last with the top-1 accuracy of the
ResNet-20 classifier on the colourised test images (Zhang et al.'s semantic test).

    python examples/cifar10_same_dataset.py --data ../shared/data --budget-minutes 60   # or --full
"""
import sys
from pathlib import Path

import torch
from fastai.learner import Metric
from fastai.torch_core import set_seed

sys.path.insert(0, str(Path(__file__).parent))
import experiment as ex
from colourgan_fastai import cifar10_dls, colour_learner, colour_metrics, resnet20_cifar, decode_lab

CLASSES = 'airplane automobile bird cat deer dog frog horse ship truck'.split()


class Top1(Metric):
    "Top-1 accuracy of a CIFAR-10 classifier on the decoded RGB of (L, pred), in the validation set's order."
    def __init__(self, clf, labels): self.clf, self.labels = clf.eval(), torch.tensor(labels)
    def reset(self): self.i, self.correct = 0, 0
    def accumulate(self, learn):
        rgb = decode_lab(learn.xb[0], learn.pred)
        m, s = (torch.tensor(v, device=rgb.device).view(1, 3, 1, 1) for v in self.clf.stats)
        with torch.no_grad(): pred = self.clf((rgb - m) / s).argmax(1).cpu()
        n = len(pred)
        self.correct += (pred == self.labels[self.i:self.i + n]).sum().item(); self.i += n
    @property
    def value(self): return self.correct / self.i if self.i else None
    @property
    def name(self): return 'top1'


def main(argv=None):
    p = ex.parser(__doc__.split('\n')[0], 'runs/cifar10')
    p.add_argument('--weights', default='../shared/weights/resnet20-12fca82f.th', help='CIFAR-10 ResNet-20 checkpoint')
    a = p.parse_args(argv)
    set_seed(a.seed)
    images, out = Path(a.images), Path(a.out)
    images.mkdir(parents=True, exist_ok=True)
    dls = cifar10_dls(a.data, n_train=a.n_train or 8000, bs=a.bs or 64, seed=a.seed, n_valid=a.n_valid)
    learn = colour_learner(dls, arch=resnet20_cifar(a.weights), metrics=colour_metrics())
    if a.figures_only:
        unet_state, saved = ex.load_run(learn, out)
        rows, curves, E, G, table = saved['rows'], saved['curves'], saved['epochs'], saved['gan_epochs'], ''
    else:
        E, G = ex.plan_epochs(learn, a)
        unet_state, curves = ex.train(learn, E, G, out)
        learn.remove_cbs(learn.cbs.filter(lambda c: type(c).__name__ == 'GANColourizer'))
        labels = [CLASSES.index(Path(f).parent.name) for f in dls.valid.items]
        clf = resnet20_cifar(a.weights)
        rows = ex.score_table(learn, unet_state, lambda: [Top1(clf, labels)])
        title = (f"CIFAR-10, 32 px: {len(dls.train_ds)} training images, {len(dls.valid_ds)} test images; "
                 f"ResNet-20 U-Net, {E} L1 epochs then {G} GAN epochs (λ = 100)")
        table = ex.markdown_table(rows, title)
        (images / 'cifar10_metrics.md').write_text(table)
        ex.save_json(out / 'metrics.json', dict(rows=rows, curves=curves, epochs=E, gan_epochs=G))
    L_, ab = ex.fixed_batch(learn)
    ex.write_gif(images / 'cifar_recolourized.gif', L_, ex.stage_predictions(learn, unet_state, L_, ab))
    ex.plot_curves(images / 'cifar10_unet_vs_gan_loss.png',
                   {'U-Net only (L1)': (list(range(1, E + 1)), curves['unet']),
                    'U-Net + GAN': (list(range(E + 1, E + G + 1)), curves['gan'])},
                   'CIFAR-10: validation L1, U-Net phase then GAN phase')
    print(table)
    return rows


if __name__ == '__main__': main()

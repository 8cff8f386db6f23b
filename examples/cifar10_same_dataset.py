"""CIFAR-10 with an encoder pretrained on CIFAR-10 (32 px): the seed recipe against the library's CIFAR-10 recipe.

Both recipes train a DynamicUnet on the CIFAR-10 ResNet-20 and are scored on all 5,000 test images:
- `seed` (`Recipe.seed()`): the reference recipe: 8,000 training images, 20 L1 epochs then 20 GAN epochs (lambda 100);
- `cifar10` (`Recipe.cifar10()`): the library's CIFAR-10 recipe: all 50,000 training images, 8 epochs of L1 with an
  EMA of G, `FeatureLoss` 0.3 and a class guide trained by `ClassGuidanceLoss` 0.003 through the ResNet-20; then a
  colour epoch adding `ColourfulnessLoss` 3 and `PSNRLoss` 2 on all but 2,000 images, on which the chroma gain is
  fitted to the truth's colourfulness minus 0.5; flip averaging.
The judge of the semantic test is an *independent* classifier, the CIFAR-10 ResNet-32 (`--judge`): it is used only
here, after training, never in a loss or to choose anything. Scores come from the model's forward pass on the test
split (`colourize` gives the same at this size: docs/experiments/cifar10.md). Each final generator is exported to
`<out>/<recipe>/final.pkl` (never committed). Writes images/cifar_recolourized.gif (a row per stage),
images/cifar10_unet_vs_gan_loss.png and images/cifar10_metrics.md.

    python examples/cifar10_same_dataset.py --data ../shared/data                 # both recipes, about 90 min
    python examples/cifar10_same_dataset.py --recipes cifar10 --seed 43           # one recipe, another seed
"""
import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import torch
from fastai.learner import Metric
from fastai.torch_core import set_seed

sys.path.insert(0, str(Path(__file__).parent))
import experiment as ex
from colourgan_fastai import cifar10_dls, colour_learner, colour_metrics, resnet20_cifar, Recipe, train
from colourgan_fastai.lab import decode_lab

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


def parser():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--data', default='../shared/data', help='root holding cifar10/ (untar_data layout)')
    p.add_argument('--weights', default='../shared/weights/resnet20-12fca82f.th',
                   help='CIFAR-10 ResNet-20: the encoder, and the network of the recipe\'s feature and class terms')
    p.add_argument('--judge', default='../shared/weights/resnet32-d509ac18.th',
                   help='CIFAR-10 ResNet-32: the independent judge of the semantic test (never trained on, never a loss)')
    p.add_argument('--recipes', nargs='+', default=['seed', 'cifar10'], choices=['seed', 'cifar10'])
    p.add_argument('--seed-n-train', type=int, default=8000, help='seed recipe: training images (the seed used 8,000)')
    p.add_argument('--n-train', type=int, default=50000, help='cifar10 recipe: training images')
    p.add_argument('--epochs', type=int, help="L1 epochs of each recipe (default: the recipe's, seed 20, cifar10 8)")
    p.add_argument('--gan-epochs', type=int, help='seed recipe: GAN epochs (default 20)')
    p.add_argument('--colour-epochs', type=int, help='cifar10 recipe: colour-phase epochs (default 1)')
    p.add_argument('--n-valid', type=int); p.add_argument('--bs', type=int, default=64)
    p.add_argument('--seed', type=int, default=42)
    p.add_argument('--images', default='images', help='where figures and the table go')
    p.add_argument('--out', default='runs/cifar10', help='where models and CSV logs go (never committed)')
    p.add_argument('--figures-only', action='store_true', help='redraw figures and table from the runs in --out')
    return p


def recipe_of(name, a):
    return Recipe.named(name).replace(epochs=a.epochs, gan_epochs=a.gan_epochs, colour_epochs=a.colour_epochs)


def recipe_learner(recipe, dls, a):
    "The recipe's colour Learner on the ResNet-20, with a class guide where the recipe trains one; and the ResNet-20."
    own = resnet20_cifar(a.weights)                      # the encoder's own network: the feature and class terms
    return colour_learner(dls, arch=resnet20_cifar(a.weights), metrics=colour_metrics(),
                          class_guidance=recipe.guide_classes(own, dls)), own


def run_recipe(name, a, out):
    "Train one recipe; returns its learner (final weights), its phase-1 state, curves and wall time."
    set_seed(a.seed)
    recipe = recipe_of(name, a)
    dls = cifar10_dls(a.data, n_train=a.seed_n_train if name == 'seed' else a.n_train, bs=a.bs, seed=a.seed,
                      n_valid=a.n_valid)
    learn, own = recipe_learner(recipe, dls, a)
    out.mkdir(parents=True, exist_ok=True)
    learn.path, learn.model_dir = out.absolute(), '.'
    phase1 = {}
    def after_l1(l):
        phase1['curve'], phase1['state'] = [v[1] for v in getattr(l.recorder, 'values', [])], ex.snapshot(l.model)
        l.save('phase1')
    t0, c0 = time.time(), time.process_time()
    gain = train(learn, recipe, own, csv_logs=True, after_l1=after_l1, seed=a.seed)
    if recipe.kind == 'gan': learn.remove_cb(learn.gan_colourizer)
    E, G = recipe.epochs, recipe.gan_epochs if recipe.kind == 'gan' else recipe.colour_epochs
    wall, cpu = time.time() - t0, time.process_time() - c0
    plan = (f"{len(dls.train_ds)} training images, Recipe.{name}(): {E} L1 + {G} "
            f"{'GAN' if recipe.kind == 'gan' else 'colour'} epochs" + (f", chroma gain {gain:.3f}" if gain else ''))
    curves = dict(phase1=phase1['curve'], phase2=ex.last_fit_curve(learn, G))
    tv = time.time(); learn.validate(); valid = time.time() - tv      # the cost of each epoch's validation pass
    learn.save('final')                                               # (after the curves: validate resets the Recorder)
    learn.export(out.absolute() / 'final.pkl')
    return learn, phase1['state'], curves, (wall, cpu, valid), plan, (E, G)


STAGE_NAMES = {'seed': ('seed: U-Net only (L1)', 'seed: U-Net + GAN'),
               'cifar10': ('cifar10 recipe: L1 phase', 'cifar10 recipe: final')}


def main(argv=None):
    a = parser().parse_args(argv)
    images, out = Path(a.images), Path(a.out)
    images.mkdir(parents=True, exist_ok=True)
    judge = resnet20_cifar(a.judge, depth=32)
    rows, curves, stages, plans, L_ = {}, {}, {}, {}, None
    for recipe in a.recipes:
        run_dir = out / recipe
        if a.figures_only:
            set_seed(a.seed)
            dls = cifar10_dls(a.data, n_train=64, bs=a.bs, seed=a.seed, n_valid=a.n_valid)
            learn = recipe_learner(recipe_of(recipe, a), dls, a)[0]
            learn.path, learn.model_dir = run_dir.absolute(), '.'
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')          # the seed's D beside its files: not needed for figures
                learn.load('phase1', with_opt=False); p1 = ex.snapshot(learn.model)
                learn.load('final', with_opt=False)
            saved = json.loads((run_dir / 'metrics.json').read_text())
        else:
            learn, p1, c, (wall, cpu, valid), plan, (E, G) = run_recipe(recipe, a, run_dir)
            labels = [CLASSES.index(Path(f).parent.name) for f in learn.dls.valid.items]
            scored = ex.score_table(learn, p1, lambda: [Top1(judge, labels)])
            saved = dict(rows={STAGE_NAMES[recipe][0]: scored['U-Net only (L1)'],
                               STAGE_NAMES[recipe][1]: {**scored['U-Net + GAN'], 'train_min': wall / 60}},
                         grey=scored['grey (ab = 0)'], truth=scored['truth'], plan=plan, epochs=[E, G],
                         curves=c, wall_s=wall, cpu_s=cpu, valid_s=valid, seed=a.seed)
            ex.save_json(run_dir / 'metrics.json', saved)
        rows.setdefault('grey (ab = 0)', saved['grey'])
        rows.update(zip(STAGE_NAMES[recipe], saved['rows'].values()))      # today's stage names, in saved order
        plans[recipe] = saved['plan']
        E, G = saved['epochs']
        curves[STAGE_NAMES[recipe][0]] = (list(range(1, E + 1)), saved['curves']['phase1'])
        curves[STAGE_NAMES[recipe][1]] = (list(range(E + 1, E + G + 1)), saved['curves']['phase2'])
        if L_ is None: L_, ab = ex.fixed_batch(learn)
        st = ex.stage_predictions(learn, p1, L_, ab)
        stages[recipe] = [(STAGE_NAMES[recipe][0], st[1][1]), (STAGE_NAMES[recipe][1], st[2][1])]
    rows['truth'] = saved['truth']
    title = ("CIFAR-10, 32 px, all 5,000 test images; ResNet-20 U-Net; judge: ResNet-32 (independent). "
             + '; '.join(f"{r}: {p}" for r, p in plans.items()))
    table = ex.markdown_table(rows, title, judge='ResNet-32 top-1')
    (images / 'cifar10_metrics.md').write_text(table)
    frames = [('grey input', ab * 0)] + [s for r in a.recipes for s in stages[r]] + [('truth', ab)]
    ex.write_gif(images / 'cifar_recolourized.gif', L_, frames)
    ex.plot_curves(images / 'cifar10_unet_vs_gan_loss.png', curves,
                   'CIFAR-10: validation L1 per epoch, phase 1 then phase 2 of each recipe')
    print(table)
    return rows


if __name__ == '__main__': main()

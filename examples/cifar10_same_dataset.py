"""Case 1: the encoder is pretrained on the same data set (CIFAR-10, 32 px); the seed recipe against the library's.

Both recipes train a DynamicUnet on the CIFAR-10 ResNet-20 and are scored on all 5,000 test images:
- `seed`: the reference recipe (`train_l1_then_gan`): 8,000 training images, 20 L1 epochs then 20 GAN epochs
  (lambda 100), about the semantic recipe's time here;
- `semantic`: the library's CIFAR-10 recipe (`train_semantic_colour` with `CIFAR10_RECIPE`, README, Case 1, step 19):
  all 50,000 training images, 8 epochs of L1 with an EMA of G, `FeatureLoss` 0.3 through the ResNet-20 and a class
  guide trained by `ClassGuidanceLoss` 0.003 through it; then a colour epoch adding `ColourfulnessLoss` 3 and
  `PSNRLoss` 2 on all but 2,000 images, on which the chroma gain is fitted to the truth's colourfulness minus 0.5;
  flip averaging. `--defaults 12` gives step 12's recipe and the seed's 11 + 11 epochs, as the README's commands for
  steps 1-18 ran.
The judge of the semantic test is an *independent* classifier, the CIFAR-10 ResNet-32 (`--judge`): it is used
only here, after training, never in a loss or to choose anything. Each final generator is exported with
`learn.export` to `<out>/<recipe>/final.pkl` (never committed). Writes images/cifar_recolourized.gif (a row per
stage), images/cifar10_unet_vs_gan_loss.png and images/cifar10_metrics.md.

    python examples/cifar10_same_dataset.py --data ../shared/data                 # both recipes, about 95 min
    python examples/cifar10_same_dataset.py --recipes semantic --seed 43          # one recipe, another seed
    python examples/cifar10_same_dataset.py --recipes semantic --phase1-from runs/cifar10/semantic   # phase 2 only
    python examples/cifar10_same_dataset.py --recipes semantic --class-weight 0 --set-aside 2000
                                                     # README, Case 1, step 17's choice (g) in one run
"""
import argparse
import json
import shutil
import sys
import time
import warnings
from pathlib import Path

import pandas as pd
import torch
from fastai.learner import Metric
from fastai.torch_core import set_seed

sys.path.insert(0, str(Path(__file__).parent))
import experiment as ex
from colourgan_fastai import cifar10_dls, colour_learner, colour_metrics, resnet20_cifar, hold_out, train_l1_then_gan, train_semantic_colour, use_flip_average, calibrate_colourfulness
from colourgan_fastai.lab import decode_lab
from colourgan_fastai.recipe import (COLOURFULNESS_WEIGHT, PSNR_WEIGHT, FEATURE_WEIGHT, PHASE1_LR, CIFAR10_RECIPE,
                                     calibration_images)

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
                   help='CIFAR-10 ResNet-20: the encoder, and the semantic loss of the semantic recipe')
    p.add_argument('--judge', default='../shared/weights/resnet32-d509ac18.th',
                   help='CIFAR-10 ResNet-32: the independent judge of the semantic test (never trained on, never a loss)')
    p.add_argument('--recipes', nargs='+', default=['seed', 'semantic'], choices=['seed', 'semantic'])
    p.add_argument('--seed-n-train', type=int, default=8000, help='seed recipe: training images (the seed used 8,000)')
    p.add_argument('--epochs', type=int, help='seed recipe: L1 epochs (default 20; --defaults 12: 11)')
    p.add_argument('--gan-epochs', type=int, help='seed recipe: GAN epochs (default 20; --defaults 12: 11)')
    p.add_argument('--full', action='store_true', help='seed recipe in full: 20 L1 + 20 GAN epochs, whatever the '
                   'defaults')
    p.add_argument('--n-train', type=int, default=50000, help='semantic recipe: training images')
    p.add_argument('--defaults', choices=['19', '12'], default='19',
                   help="the semantic recipe's defaults: 19, the library's CIFAR-10 recipe (CIFAR10_RECIPE: README, "
                        "Case 1, step 19); 12, step 12's (train_semantic_colour's own), which the README's commands "
                        "for steps 1-18 ran with")
    p.add_argument('--sem-epochs', type=int, help='semantic recipe: phase-1 epochs (default: 8; --defaults 12: 4)')
    p.add_argument('--colour-epochs', type=int, default=1, help='semantic recipe: epochs with ColourfulnessLoss')
    p.add_argument('--semantic-weight', type=float, default=0.,
                   help='semantic recipe: SemanticLoss through the ResNet-20 (default 0, off, as the library\'s)')
    p.add_argument('--feature-weight', type=float, default=FEATURE_WEIGHT,
                   help="semantic recipe: FeatureLoss through the ResNet-20 in both phases (the library's CIFAR-10 "
                        "default; 0 for the recipe before step 12)")
    p.add_argument('--no-ema', action='store_true', help='semantic recipe without the EMA of G (for the ablation)')
    p.add_argument('--colourfulness-weight', type=float,
                   help="semantic recipe: ColourfulnessLoss's weight in the colour phase (default 3; --defaults 12: 1.5)")
    p.add_argument('--psnr-weight', type=float,
                   help="semantic recipe: PSNRLoss's weight in the colour phase (default 2; --defaults 12: 0.2)")
    p.add_argument('--phase1-from', metavar='DIR',
                   help='semantic recipe: continue from DIR/phase1.pth of an earlier run with the same phase-1 settings '
                        '(its time and curve come from DIR/unet_log.csv)')
    p.add_argument('--colour-feature-weight', type=float, metavar='W',
                   help="semantic recipe: FeatureLoss weight of the colour phase (default: --feature-weight's)")
    p.add_argument('--encoder-lr-div', type=float, default=1., metavar='D',
                   help="semantic recipe: phase 1 trains the pretrained encoder at 1/D of the decoder's learning rate "
                        "(fastai's discriminative learning rates, fit_one_cycle(slice(lr/D, lr)); default 1: one rate)")
    p.add_argument('--class-weight', type=float, metavar='W',
                   help="semantic recipe: W > 0 builds the U-Net with a class guide (class_guidance=10) and adds "
                        "W * ClassGuidanceLoss through the encoder's own ResNet-20 in both phases (README, step 19; "
                        "default 0.003; --defaults 12: 0, no guide)")
    p.add_argument('--set-aside', type=int, metavar='N',
                   help='semantic recipe: train on all but N training images, set aside by hold_out(seed=--seed): '
                        'the tuning images of bench/colour_phase_screen.py --tune-set-aside (step 17)')
    p.add_argument('--colour-set-aside', type=int, metavar='N',
                   help='semantic recipe: phase 1 trains on every training image, the colour phase on all but N, set '
                        'aside by hold_out(seed=--seed), which --calibrate then fits the gain on (steps 16 and 19; '
                        'default: 4 %% of --n-train, given --calibrate and no --set-aside; --defaults 12: none)')
    p.add_argument('--flip-average', action=argparse.BooleanOptionalAction,
                   help="semantic recipe: the final generator averages each prediction with its mirror image's "
                        "(default: on; --defaults 12: off)")
    p.add_argument('--calibrate', type=float, metavar='GAP',
                   help="semantic recipe: after training, fit the chroma gain on the --set-aside (or --colour-set-aside) "
                        "images so that their colourfulness is the truth's minus GAP (calibrate_colourfulness; "
                        "default 1; --defaults 12: no gain)")
    p.add_argument('--no-calibrate', action='store_true', help='semantic recipe: no chroma gain')
    p.add_argument('--n-valid', type=int); p.add_argument('--bs', type=int, default=64)
    p.add_argument('--seed', type=int, default=42)
    p.add_argument('--images', default='images', help='where figures and the table go')
    p.add_argument('--out', default='runs/cifar10', help='where models and CSV logs go (never committed)')
    p.add_argument('--figures-only', action='store_true', help='redraw figures and table from the runs in --out')
    return p


DEFAULTS = {       # '19': the library's CIFAR-10 recipe; '12': the one the README's commands for steps 1-18 ran with
    '19': dict(epochs=20, gan_epochs=20, sem_epochs=CIFAR10_RECIPE['epochs'],
               **{k: CIFAR10_RECIPE[k] for k in ('class_weight', 'colourfulness_weight', 'psnr_weight', 'flip_average',
                                                 'calibrate')}),
    '12': dict(epochs=11, gan_epochs=11, sem_epochs=4, class_weight=0., colourfulness_weight=COLOURFULNESS_WEIGHT,
               psnr_weight=PSNR_WEIGHT, flip_average=False, calibrate=None)}


def fill_defaults(a):
    """The semantic recipe's options left unset take `--defaults`' values. Under step 19's, a calibrated run with no
    images set aside keeps 4 % of its training images from the colour phase to fit the gain on (2,000 of 50,000)."""
    if a.no_calibrate and a.calibrate is not None: raise SystemExit('--calibrate and --no-calibrate contradict')
    for k, v in DEFAULTS[a.defaults].items():
        if getattr(a, k) is None and not (k == 'calibrate' and a.no_calibrate): setattr(a, k, v)
    if a.defaults == '19' and a.calibrate is not None and not a.set_aside and a.colour_set_aside is None:
        a.colour_set_aside = calibration_images(a.n_train)
    return a


def recipe_dls(recipe, a):
    """The recipe's DataLoaders (its training images, the test images to validate), a loader of the training images
    set aside (semantic recipe with --set-aside or --colour-set-aside; else None) and the colour phase's DataLoaders
    (with --colour-set-aside: all but those images; else None, the same as phase 1's)."""
    n_train = a.seed_n_train if recipe == 'seed' else a.n_train
    dls = cifar10_dls(a.data, n_train=n_train, bs=a.bs, seed=a.seed, n_valid=a.n_valid)
    if recipe == 'semantic' and a.set_aside: return (*hold_out(dls, a.set_aside, seed=a.seed), None)
    if recipe == 'semantic' and a.colour_set_aside:
        colour_dls, aside = hold_out(dls, a.colour_set_aside, seed=a.seed)
        return dls, aside, colour_dls
    return dls, None, None


def recipe_learner(recipe, dls, a):
    "The recipe's colour Learner on the ResNet-20, with a class guide for the semantic recipe given --class-weight."
    guided = recipe == 'semantic' and a.class_weight > 0
    return colour_learner(dls, arch=resnet20_cifar(a.weights), metrics=colour_metrics(),
                          class_guidance=len(CLASSES) if guided else None)


def load_saved(learn, file):
    "learn.load(file), refusing clearly a file trained with (or without) a class guide that this U-Net lacks (has)."
    try: learn.load(Path(file).absolute(), with_opt=False)
    except RuntimeError as e:
        if '.head.' not in str(e) and '.fuse.' not in str(e): raise
        guided = learn.model.guide is not None
        raise SystemExit(f"{file}.pth was trained {'without' if guided else 'with'} a class guide, and this U-Net "
                         f"{'has' if guided else 'has none'}: give the --class-weight it was trained with") from None


def run_recipe(recipe, a, out):
    "Train one recipe; returns its learner (final weights), its phase-1 state, curves and wall time."
    set_seed(a.seed)
    dls, aside, colour_dls = recipe_dls(recipe, a)
    learn = recipe_learner(recipe, dls, a)
    out.mkdir(parents=True, exist_ok=True)
    learn.path, learn.model_dir = out.absolute(), '.'
    phase1 = {}
    def after_l1(l):
        phase1['curve'], phase1['state'] = [v[1] for v in getattr(l.recorder, 'values', [])], ex.snapshot(l.model)
        l.save('phase1')
        (out / 'phase1.json').write_text(json.dumps(dict(set_aside=a.set_aside or 0, seed=a.seed)))  # its images
    t0, c0 = time.time(), time.process_time()
    if recipe == 'seed':
        E, G = (20, 20) if a.full else (a.epochs, a.gan_epochs)
        train_l1_then_gan(learn, E, G, csv_logs=True, after_l1=after_l1)
        learn.remove_cbs(learn.cbs.filter(lambda c: type(c).__name__ == 'GANColourizer'))
        plan = f"{len(dls.train_ds)} training images, {E} L1 + {G} GAN epochs (λ = 100)"
    else:
        E, G = a.sem_epochs, a.colour_epochs
        earlier = 0.
        if a.phase1_from:
            src = Path(a.phase1_from)
            if a.set_aside:                        # the gain must be fitted on images phase 1 never trained on
                meta = src / 'phase1.json'
                saved = json.loads(meta.read_text()) if meta.exists() else {}
                if saved != dict(set_aside=a.set_aside, seed=a.seed):
                    raise SystemExit(f"{src}'s phase 1 did not set the same {a.set_aside} images aside (seed "
                                     f"{a.seed}): it recorded {saved or 'nothing'}; train phase 1 with --set-aside")
            elif a.colour_set_aside and (src / 'phase1.json').exists() and \
                    json.loads((src / 'phase1.json').read_text()).get('set_aside'):
                raise SystemExit(f"{src}'s phase 1 set training images aside; --colour-set-aside continues a phase 1 "
                                 f"that trained on all of them")
            load_saved(learn, src / 'phase1')
            log = pd.read_csv(src / 'unet_log.csv')
            if len(log) != E: raise SystemExit(f"{src} ran {len(log)} phase-1 epochs, not --sem-epochs {E}")
            earlier = sum(int(m) * 60 + int(s) for m, s in (t.split(':') for t in log['time']))
            if src.resolve() != out.resolve(): shutil.copy(src / 'unet_log.csv', out / 'unet_log.csv')
        own = resnet20_cifar(a.weights)                  # the encoder's own network: FeatureLoss, SemanticLoss
        lr = slice(PHASE1_LR / a.encoder_lr_div, PHASE1_LR) if a.encoder_lr_div != 1 else PHASE1_LR
        train_semantic_colour(learn, 0 if a.phase1_from else E, G, lr=lr, classifier=own,
                              semantic_weight=a.semantic_weight, colourfulness_weight=a.colourfulness_weight,
                              psnr_weight=a.psnr_weight, csv_logs=True, after_l1=after_l1, ema=not a.no_ema,
                              feature_net=own, feature_weight=a.feature_weight,
                              colour_feature_weight=a.colour_feature_weight, class_net=own,
                              class_weight=a.class_weight, colour_dls=colour_dls)
        if a.flip_average: use_flip_average(learn)
        gain = calibrate_colourfulness(learn, aside, gap=a.calibrate) if a.calibrate is not None else None
        if a.phase1_from: phase1['curve'] = list(log['valid_loss'])    # phase 1 ran in the earlier run
        t0 -= earlier
        fw = a.feature_weight if a.colour_feature_weight is None else a.colour_feature_weight
        plan = (f"{len(dls.train_ds)} training images, {E} epochs L1 + {a.semantic_weight:g}·semantic"
                f"{f' + {a.feature_weight:g}·feature' if a.feature_weight else ''}{'' if a.no_ema else ' (EMA)'}"
                f"{f' + {a.class_weight:g}·class guidance' if a.class_weight else ''}"
                f"{f' (encoder at lr/{a.encoder_lr_div:g})' if a.encoder_lr_div != 1 else ''}, then "
                f"{G}{f' on {len(colour_dls.train_ds)} images' if colour_dls else ''}"
                f" with + {a.colourfulness_weight:g}·colourfulness + {a.psnr_weight:g}·PSNR loss"
                f"{f' + {fw:g}·feature' if fw != a.feature_weight else ''}"
                f"{'; flip-averaged' if a.flip_average else ''}"
                + (f"; chroma gain {gain:.3f} fitted on {a.set_aside or a.colour_set_aside} set-aside images"
                   if gain else ''))
    wall = time.time() - t0
    # CPU seconds of this process: unlike wall time, hardly moved by other work sharing the machine. Unknown
    # when phase 1 ran in an earlier process.
    cpu = None if recipe == 'semantic' and a.phase1_from else time.process_time() - c0
    curves = dict(phase1=phase1['curve'], phase2=ex.last_fit_curve(learn, G))
    tv = time.time(); learn.validate(); valid = time.time() - tv      # the cost of each epoch's validation pass
    learn.save('final')                                               # (after the curves: validate resets the Recorder)
    learn.export(out.absolute() / 'final.pkl')
    return learn, phase1['state'], curves, (wall, cpu, valid), plan, (E, G)


STAGE_NAMES = {'seed': ('seed: U-Net only (L1)', 'seed: U-Net + GAN'),
               'semantic': ('semantic: phase 1', 'semantic: final')}


def main(argv=None):
    a = fill_defaults(parser().parse_args(argv))
    if a.calibrate is not None and not (a.set_aside or a.colour_set_aside):
        raise SystemExit('--calibrate fits the chroma gain on training images set aside: give --set-aside N or '
                         '--colour-set-aside N too')
    if a.set_aside and a.colour_set_aside:
        raise SystemExit('--set-aside keeps images from both phases, --colour-set-aside from the colour phase only: '
                         'give one')
    if a.class_weight < 0: raise SystemExit(f'--class-weight must be >= 0, not {a.class_weight:g}')
    if not a.encoder_lr_div > 0: raise SystemExit(f'--encoder-lr-div must be positive, not {a.encoder_lr_div:g}')
    if a.encoder_lr_div != 1 and a.phase1_from:
        raise SystemExit('--encoder-lr-div sets phase 1\'s learning rates, and with --phase1-from phase 1 does not run')
    images, out = Path(a.images), Path(a.out)
    images.mkdir(parents=True, exist_ok=True)
    judge = resnet20_cifar(a.judge, depth=32)
    rows, curves, stages, plans, L_ = {}, {}, {}, {}, None
    for recipe in a.recipes:
        run_dir = out / recipe
        if a.figures_only:
            set_seed(a.seed)
            dls = cifar10_dls(a.data, n_train=64, bs=a.bs, seed=a.seed, n_valid=a.n_valid)
            learn = recipe_learner(recipe, dls, a)
            learn.path, learn.model_dir = run_dir.absolute(), '.'
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')          # the seed's files also hold its D: not needed for figures
                load_saved(learn, run_dir / 'phase1'); p1 = ex.snapshot(learn.model)
                load_saved(learn, run_dir / 'final')
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

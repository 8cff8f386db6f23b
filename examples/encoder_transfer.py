"""Encoder transfer: does an encoder pretrained on a larger, higher-resolution data set (ImageNet) transfer better to 96 px
photos than one pretrained on CIFAR-10?

Generators that differ only in the encoder, each trained with the library's default recipe
(`train_semantic_colour`: L1 with an EMA of G, `--semantic-weight W` adds a semantic loss through the encoder's
*own* pretrained classifier; then a colour phase) in the same wall-time budget, on STL-10 (`--dataset stl10`, for
users who have it) or Imagenette (`--dataset imagenette`: 5,000 training photos via untar_data(URLs.IMAGENETTE_160),
all 1,959 validation photos):

- `resnet20`: the CIFAR-10 ResNet-20 (32 px images), fine-tuned;
- `imagenet`: an ImageNet encoder (torchvision's ResNet-18 when online, or MobileNetV2 from a weights file),
  fine-tuned;
- `imagenet-frozen`: the same ImageNet encoder frozen (`learn.freeze()`: only the decoder and BatchNorm train),
  the seed's future-work question.

`--recipe seed` trains the same runs with the seed recipe instead (`train_l1_then_gan`: L1, then the PatchGAN
with lambda = 100, as many GAN epochs as L1 epochs) in the same budget, for comparison; its runs go to
<out>/<run>-seed_s<seed>/. `--colourfulness-weight W` sets the default recipe's colour-phase weight (the table ran
with the CIFAR-10 value, 1.5; `colourgan train` uses 0.5 on photos); other weights go to <out>/<run>-cf<W>_s<seed>/.
`--feature-weight W` adds the CIFAR-10 recipe's `FeatureLoss` through the encoder's *own* pretrained network in both phases
(the CIFAR-10 recipe's: 0.3); its runs go to <out>/<run>-feat<W>_s<seed>/. The budget planner times a
few training steps of each run and fits the phase-1 epochs to the budget; `--phase1-epochs E` fixes them instead
(e.g. to another seed's plan, so that seeds compare at equal epochs).

Each run goes to <out>/<run>_s<seed>/ (final.pkl exported with `learn.export`, metrics.json); a run whose
metrics.json exists is loaded, not retrained, so seeds and rows can be added later. Writes
images/encoder_transfer_metrics.md (with the blotch measure `spurious_colour`), images/diff_encoders_<dataset>.gif
(the same validation photos for every run) and images/encoder_loss_differences.png (validation curves).
There is no ImageNet classifier here other than the encoder itself, so the table has no semantic column: an
encoder must not judge itself.

    python examples/encoder_transfer.py --dataset imagenette --data ../shared/data \\
        --imagenet-arch mobilenet_v2 --imagenet-weights ../shared/weights/mobilenet_v2_imagenet.pth \\
        --budget-minutes 15 --runs resnet20 imagenet imagenet-frozen --seeds 42 43
"""
import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from fastai.torch_core import set_seed

sys.path.insert(0, str(Path(__file__).parent))
import experiment as ex
from colourgan_fastai import stl10_dls, imagenette_dls, colour_learner, colour_metrics, resnet20_cifar, encoder_classifier, score_predictions, SpuriousColour, train_semantic_colour, train_l1_then_gan, ProgressiveResizing, PatchDiscriminator, GANColourizer
from colourgan_fastai.losses import colourfulness_gap, log_mse
from colourgan_fastai.recipe import network_terms

COLOURFULNESS_WEIGHT = 1.5   # the colour phase's weight the committed table ran with (Recipe.photos() uses 0.5)

RUNS = ('resnet20', 'imagenet', 'imagenet-frozen')


def metrics(): return colour_metrics() + [SpuriousColour()]


def parser():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--dataset', choices=['stl10', 'imagenette'], default='imagenette')
    p.add_argument('--data', default='../shared/data', help='root holding the data set folder')
    p.add_argument('--cifar-weights', default='../shared/weights/resnet20-12fca82f.th')
    p.add_argument('--imagenet-arch', default='resnet18', help='resnet18 (downloads weights) or mobilenet_v2')
    p.add_argument('--imagenet-weights', help='state dict file for --imagenet-arch (no download)')
    p.add_argument('--runs', nargs='+', choices=RUNS, default=list(RUNS))
    p.add_argument('--seeds', nargs='+', type=int, default=[42])
    p.add_argument('--recipe', choices=['default', 'seed'], default='default',
                   help="default: the library's (train_semantic_colour); seed: L1 then the PatchGAN "
                        "(train_l1_then_gan, lambda = 100), equal L1 and GAN epochs fitted to the same budget")
    p.add_argument('--budget-minutes', type=float, default=15, help='training wall time per run (epochs fitted to it)')
    p.add_argument('--colour-epochs', type=int, default=1, help='epochs of the colour phase (within the budget)')
    p.add_argument('--phase1-epochs', type=int, metavar='E',
                   help="default recipe: E phase-1 epochs instead of as many as the budget planner fits (e.g. another "
                        "seed's plan, so that seeds compare at equal epochs); the wall time is still reported")
    p.add_argument('--semantic-weight', type=float, default=0.,
                   help="SemanticLoss's weight through the encoder's own classifier (default 0, as the library's "
                        "recipe; the committed ResNet-20 runs used 0.05, recorded in their metrics.json)")
    p.add_argument('--feature-weight', type=float, default=0.,
                   help="default recipe: FeatureLoss's weight through the encoder's own pretrained network, both "
                        "phases (default 0, as the committed table ran; the library's recipes use 0.3)")
    p.add_argument('--colourfulness-weight', type=float, default=COLOURFULNESS_WEIGHT,
                   help="default recipe: ColourfulnessLoss's weight in the colour phase (default: the CIFAR-10 value "
                        "the committed table ran with; Recipe.photos() uses 0.5)")
    p.add_argument('--size', type=int, default=96)
    p.add_argument('--progressive', type=int, metavar='SIZE',
                   help='progressive resizing: train the first half of phase 1 at SIZE px (ProgressiveResizing), the rest '
                        'at --size; runs go to <run>-p<SIZE>_s<seed>')
    p.add_argument('--n-train', type=int); p.add_argument('--n-valid', type=int)
    p.add_argument('--bs', type=int, default=32)
    p.add_argument('--images', default='images', help='where figures and the table go')
    p.add_argument('--out', default='runs/encoder_transfer', help='where models and logs go (never committed)')
    p.add_argument('--figures-only', action='store_true', help='only redraw figures and table from finished runs')
    return p


def _setup(a, run):
    "(learner kwargs, frozen?, display name) of a run."
    if run == 'resnet20': return dict(arch=resnet20_cifar(a.cifar_weights)), False, 'ResNet-20 (CIFAR-10)'
    frozen = run.endswith('frozen')
    return (dict(arch=a.imagenet_arch, weights=a.imagenet_weights, pretrained=True), frozen,
            f"{a.imagenet_arch} (ImageNet){', frozen' if frozen else ''}")


def variant(a):
    """(run-folder tag, name suffix) of what sets a run apart from the committed table's: progressive resizing, the
    seed recipe, another colour weight. Both come from here, so a run's folder and its name always agree."""
    parts = [(f'-p{a.progressive}', f", progressive {a.progressive}→{a.size} px") if a.progressive else None,
             ('-seed', ', seed recipe') if a.recipe == 'seed' else None,
             (f'-cf{a.colourfulness_weight:g}', f", colour weight {a.colourfulness_weight:g}")
             if a.recipe == 'default' and a.colourfulness_weight != COLOURFULNESS_WEIGHT else None,
             (f'-feat{a.feature_weight:g}', f", FeatureLoss {a.feature_weight:g}")
             if a.recipe == 'default' and a.feature_weight else None]
    return ''.join(t for t, _ in filter(None, parts)), ''.join(n for _, n in filter(None, parts))


def _classifier(a, run):
    "The encoder's own pretrained classifier, for the semantic and feature losses."
    if run == 'resnet20': return resnet20_cifar(a.cifar_weights)
    return encoder_classifier(a.imagenet_arch, True, a.imagenet_weights)


def seconds_per_epoch(learn, terms=(), colour=False, n=5, train_dl=None, gan=False):
    """One training epoch of the recipe (L1 + the network `terms`, e.g. SemanticLoss or FeatureLoss, + the colour phase's
    colourfulness and PSNR terms when `colour`, + a PatchGAN's D step and adversarial term when `gan`; Adam step,
    frozen parameters excluded) on `train_dl` (default: the Learner's) plus one validation pass, timed on a copy of
    the model: the median of `n` steps on real batches drawn from the loader, so decoding and augmentation count
    (three warm-up steps first, untimed, while the loader's workers fill their queue), and `n` validation batches.
    On MobileNetV2 at 96 px with FeatureLoss it estimated 3.9-5.1 min per epoch in five plans against 4.0-4.8 as
    run (a quarter either way; `--phase1-epochs` fixes the count); three steps on one reused batch had given 3.5-4.4."""
    model = copy.deepcopy(learn.model).train()
    for term in terms: term.net.to(next(model.parameters()).device)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], 1e-6)
    train_dl = train_dl or learn.dls.train
    batches, steps = iter(train_dl), []
    L_, ab = next(batches)
    if gan:
        D = PatchDiscriminator(3, img_size=tuple(L_.shape[-2:])).to(L_.device)
        d_opt, bce = torch.optim.Adam(D.parameters(), 1e-6), torch.nn.functional.binary_cross_entropy_with_logits
        d_in = lambda ab_: torch.cat([L_.as_subclass(torch.Tensor), ab_.as_subclass(torch.Tensor)], 1)
    for i in range(min(n + 3, len(train_dl))):
        t = time.time()
        if i: L_, ab = next(batches)
        pred = model(L_)
        loss = (pred - ab).abs().mean()
        for term in terms: loss = loss + term.weight * term.term(L_, pred, ab)
        if colour: loss = loss + colourfulness_gap(L_, pred, ab) + log_mse(L_, pred, ab)
        if gan:                                          # as GANColourizer: D's step, then D's verdict in G's loss
            p_real, p_fake = D(d_in(ab)), D(d_in(pred.detach()))
            d_loss = bce(p_real, torch.ones_like(p_real)) + bce(p_fake, torch.zeros_like(p_fake))
            d_opt.zero_grad(); d_loss.backward(); d_opt.step()
            D.requires_grad_(False)
            p = D(d_in(pred))
            loss = loss + bce(p, torch.ones_like(p))
            D.requires_grad_(True)
        loss.backward(); opt.step(); opt.zero_grad()
        if i >= 3: steps.append(time.time() - t)
    t_train = float(np.median(steps)) if steps else time.time() - t
    L_, _ = learn.dls.valid.one_batch()                               # validation is always at full size
    model.eval()
    with torch.no_grad():
        t = time.time()
        for _ in range(n): model(L_)
    t_valid = (time.time() - t) / n * 1.3                                   # + metrics
    return len(train_dl) * t_train + len(learn.dls.valid) * t_valid


def plan_epochs(budget_s, per_full, per_colour, colour_epochs, per_small=None):
    """Phase-1 epochs (small, full size) that fit in `budget_s` beside the colour epochs: all at full size, or with
    `per_small`, as many small as full-size epochs, a leftover epoch going to whichever still fits. At least 1."""
    left = budget_s - colour_epochs * per_colour
    if per_small is None: return 0, max(1, int(left // per_full))
    k = max(0, int(left // (per_small + per_full)))
    left -= k * (per_small + per_full)
    if left >= per_full: return k, k + 1
    if left >= per_small: return k + 1, k
    return k, max(1, k)


def train_run(a, dls, run, seed, out, small=None):
    kw, frozen, name = _setup(a, run)
    fw = a.feature_weight if a.recipe == 'default' else 0.
    net = _classifier(a, run) if a.semantic_weight or fw else None
    set_seed(seed)
    learn = colour_learner(dls, metrics=metrics(), **kw)
    if frozen: learn.freeze()
    w = a.semantic_weight
    terms = network_terms(net, fw, semantic_weight=w)       # what the recipe adds, for the timing
    per_epoch = seconds_per_epoch(learn, terms)
    per_colour = seconds_per_epoch(learn, terms, colour=a.recipe == 'default', gan=a.recipe == 'seed')
    per_small = seconds_per_epoch(learn, terms, train_dl=small.train) if small is not None else None
    fixed = a.phase1_epochs                    # default recipe only (main checks); the estimates are still printed
    if a.recipe == 'seed':                 # as many GAN epochs as L1 epochs (the seed's 20 + 20), at least 1 + 1
        Es, Ef = 0, max(1, int(a.budget_minutes * 60 // (per_epoch + per_colour)))
        G = Ef
    else:
        G = a.colour_epochs
        Es, Ef = (0, fixed) if fixed else plan_epochs(a.budget_minutes * 60, per_epoch, per_colour, G, per_small)
    E = Es + Ef
    name += variant(a)[1]
    print(f"{name}, seed {seed}: about {per_epoch / 60:.1f} min per phase-1 epoch"
          + (f" ({per_small / 60:.1f} at {a.progressive} px)" if small is not None else '')
          + f" and {per_colour / 60:.1f} min per {'GAN' if a.recipe == 'seed' else 'colour'} epoch -> {E} + {G} epochs"
          + (f" (the first {Es} at {a.progressive} px)" if small is not None else '')
          + (f" (fixed by --phase1-epochs; the budget is {a.budget_minutes:g} min)" if fixed else
             f" in {a.budget_minutes:g} min"), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    learn.path, learn.model_dir = out.absolute(), '.'
    phase1 = {}
    def after_l1(l):
        phase1['curve'], phase1['state'] = ex.last_fit_curve(l, E), ex.snapshot(l.model)
        l.save('phase1')
    t0 = time.time()
    if a.recipe == 'seed':
        train_l1_then_gan(learn, E, G, csv_logs=True, after_l1=after_l1)
        learn.remove_cbs(learn.cbs.filter(lambda c: isinstance(c, GANColourizer)))
    else:
        train_semantic_colour(learn, E, G, net_terms=terms, csv_logs=True,
                              colourfulness_weight=a.colourfulness_weight,
                              after_l1=after_l1, phase1_cbs=[ProgressiveResizing(small.train, Es)] if small else [])
    wall = time.time() - t0
    learn.save('final')
    learn.export(out.absolute() / 'final.pkl')
    res = dict(name=name, seed=seed, recipe=a.recipe, epochs=[E, G], semantic_weight=w, feature_weight=fw,
               colourfulness_weight=a.colourfulness_weight if a.recipe == 'default' else None,
               small_epochs=Es, small_size=a.progressive, wall_s=wall,
               phase1=score_predictions(dls.valid, ex._predict_with(learn, phase1['state']), metrics()),
               final=score_predictions(dls.valid, ex._predict_with(learn), metrics()),
               curves=dict(phase1=phase1['curve'], phase2=ex.last_fit_curve(learn, G)))
    ex.save_json(out / 'metrics.json', res)
    return learn, res


def load_run(a, dls, run, out):
    kw, _, _ = _setup(a, run)
    learn = colour_learner(dls, metrics=colour_metrics(), **kw)
    learn.path, learn.model_dir = out.absolute(), '.'
    learn.load('final', with_opt=False)
    return learn, json.loads((out / 'metrics.json').read_text())


def seed_scatter(results):
    "{run name: {metric: (mean, half-range)}} over the seeds each run has."
    by = {}
    for r in results: by.setdefault(r['name'], []).append(r['final'])
    return {n: {k: (float(np.mean([f[k] for f in fs])), float(np.ptp([f[k] for f in fs]) / 2)) for k in fs[0]}
            for n, fs in by.items() if len(fs) > 1}


def main(argv=None):
    p = parser()
    a = p.parse_args(argv)
    if a.recipe == 'seed' and a.progressive: p.error("--progressive is for the default recipe only")
    if a.phase1_epochs is not None and (a.recipe == 'seed' or a.progressive or a.phase1_epochs < 1):
        p.error("--phase1-epochs takes a positive count, for the default recipe without --progressive")
    images, out = Path(a.images), Path(a.out)
    images.mkdir(parents=True, exist_ok=True)
    kw = dict(n_train=a.n_train, size=a.size, bs=a.bs, seed=42, n_valid=a.n_valid)
    make = stl10_dls if a.dataset == 'stl10' else imagenette_dls
    dls = make(a.data, **kw)
    small = make(a.data, **{**kw, 'size': a.progressive}) if a.progressive else None
    tag = variant(a)[0]
    results, stages, curves = [], [], {}
    L_ = ab = None
    for run in a.runs:
        for seed in a.seeds:
            run_dir = out / f'{run}{tag}_s{seed}'
            if (run_dir / 'metrics.json').exists(): learn, res = load_run(a, dls, run, run_dir)
            elif a.figures_only: continue
            else: learn, res = train_run(a, dls, run, seed, run_dir, small)
            results.append(res)
            if L_ is None: L_, ab = ex.fixed_batch(learn)
            if seed == a.seeds[0]:
                with torch.no_grad(): stages.append((res['name'], ex._predict_with(learn)(L_, ab)))
                E, G = res['epochs']
                curves[f"{res['name']}: phase 1"] = (list(range(1, E + 1)), res['curves']['phase1'])
                curves[f"{res['name']}: colour phase"] = (list(range(E + 1, E + G + 1)), res['curves']['phase2'])
    if not results: raise SystemExit(f"no finished runs under {out}")
    rows = {'grey (ab = 0)': score_predictions(dls.valid, lambda L, ab: ab * 0, metrics())}
    for r in results:
        if r['seed'] == a.seeds[0]: rows[f"{r['name']}, seed {r['seed']}: phase 1 only"] = r['phase1']
        first = f" (the first {r['small_epochs']} at {r['small_size']} px)" if r.get('small_epochs') else ''
        rows[f"{r['name']}, seed {r['seed']}: {r['epochs'][0]} + {r['epochs'][1]} epochs{first}"] = \
            {**r['final'], 'train_min': r['wall_s'] / 60}
    rows['truth'] = score_predictions(dls.valid, lambda L, ab: ab, metrics())
    title = (f"{a.dataset} at {a.size} px: {len(dls.train_ds)} training / {len(dls.valid_ds)} validation photos; "
             f"{'seed' if a.recipe == 'seed' else 'default'} recipe, {a.budget_minutes:g} min budget per run; blotch pixels = share of pixels coloured with a hue absent within 7 px in the truth (`spurious_colour`)")
    table = ex.markdown_table(rows, title)
    scatter = seed_scatter(results)
    if scatter:
        table += '\n' + '\n'.join(
            f"- {n}, mean ± half-range over seeds: " + ', '.join(f"{k} {m:.4g} ± {h:.2g}" for k, (m, h) in s.items())
            for n, s in scatter.items()) + '\n'
    (images / 'encoder_transfer_metrics.md').write_text(table)
    ex.save_json(out / 'summary.json', dict(rows=rows, scatter=scatter))
    ex.write_gif(images / f'diff_encoders_{a.dataset}.gif', L_, [('grey input', ab * 0), *stages, ('truth', ab)],
                 scale=1)
    ex.plot_curves(images / 'encoder_loss_differences.png', curves,
                   f'{a.dataset}, {a.size} px: validation L1 per epoch')
    print(table)
    return rows


if __name__ == '__main__': main()

"""Shared machinery of the two seed experiments: budgeted L1 -> GAN training, the metrics table, the GIF and the
loss plot. The scripts beside this file choose the data and the encoders."""
import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from colourgan_fastai import colour_metrics, score_predictions, decode_lab, train_l1_then_gan

FULL = dict(epochs=20, gan_epochs=20)       # the seed recipe


def parser(desc, default_out):
    p = argparse.ArgumentParser(description=desc)
    p.add_argument('--data', default='../shared/data', help='root holding the data set folders')
    p.add_argument('--full', action='store_true', help='the full seed recipe: 20 L1 + 20 GAN epochs')
    p.add_argument('--budget-minutes', type=float, default=60, help='fit the epochs into this wall time')
    p.add_argument('--epochs', type=int, help='L1 epochs (overrides the budget)')
    p.add_argument('--gan-epochs', type=int, help='GAN epochs (overrides the budget)')
    p.add_argument('--n-train', type=int); p.add_argument('--n-valid', type=int)
    p.add_argument('--bs', type=int); p.add_argument('--seed', type=int, default=42)
    p.add_argument('--images', default='images', help='where figures and tables go')
    p.add_argument('--out', default=default_out, help='where models and CSV logs go (never committed)')
    p.add_argument('--figures-only', action='store_true',
                   help='redraw the GIF and loss plot from the models and metrics.json a finished run saved in --out')
    return p


def _seconds_per_batch(learn, n=3):
    "Seconds per L1 training batch (generator forward + backward + Adam step), timed on a copy of the model."
    import copy
    model = copy.deepcopy(learn.model).train()
    opt = torch.optim.Adam(model.parameters(), 1e-6)
    L_, ab = learn.dls.train.one_batch()
    for i in range(n + 1):
        if i == 1: t = time.time()
        loss = (model(L_) - ab).abs().mean(); loss.backward(); opt.step(); opt.zero_grad()
    return (time.time() - t) / n


GAN_COST = 1.45     # a GAN batch costs about 1.45 L1 batches (D step + D in G's loss; measured on the demo)


def plan_epochs(learn, a):
    "(L1 epochs, GAN epochs) from --full, explicit epochs, or the time budget (equal numbers of each)."
    if a.full: return FULL['epochs'], FULL['gan_epochs']
    if a.epochs is not None and a.gan_epochs is not None: return a.epochs, a.gan_epochs
    nb, nv = len(learn.dls.train), len(learn.dls.valid)
    t_l1 = _seconds_per_batch(learn); t_gan = GAN_COST * t_l1
    t_val = t_l1 / 3 * nv * 1.5                    # forward only, plus metrics
    per_pair = nb * (t_l1 + t_gan) + 2 * t_val
    k = max(1, int(a.budget_minutes * 60 * 0.85 // per_pair))
    print(f"budget {a.budget_minutes:.0f} min: {t_l1:.2f} s per L1 batch, {t_gan:.2f} s per GAN batch, "
          f"{nb} batches/epoch -> {k} L1 + {k} GAN epochs")
    return min(k, FULL['epochs']), min(k, FULL['gan_epochs'])


def snapshot(model): return {k: v.clone() for k, v in model.state_dict().items()}


def train(learn, epochs, gan_epochs, out, lr=1e-3, gan_lr=2e-4):
    "The library's L1 -> GAN recipe, with CSV logs and a snapshot of the U-Net; returns (unet_state, valid L1 curves)."
    out.mkdir(parents=True, exist_ok=True)
    learn.path, learn.model_dir = out.absolute(), '.'
    unet = {}
    def after_l1(l):
        unet['curve'], unet['state'] = [v[1] for v in l.recorder.values], snapshot(l.model)
        l.save('unet')
    train_l1_then_gan(learn, epochs, gan_epochs, lr, gan_lr, lambda_l1=100., csv_logs=True, after_l1=after_l1)
    learn.save('gan')
    return unet['state'], dict(unet=unet['curve'], gan=[v[1] for v in learn.recorder.values])


def _predict_with(learn, state=None):
    "A predict(L, ab) function for score_predictions using the learner's model (optionally with other weights)."
    model = learn.model
    if state is not None:
        import copy
        model = copy.deepcopy(learn.model)
        model.load_state_dict(state, strict=False)
    model.eval()
    return lambda L, ab: model(L)


def load_run(learn, out):
    "The U-Net-only state and the final GAN weights a finished run saved in `out`, and its metrics.json."
    learn.path, learn.model_dir = Path(out).absolute(), '.'
    learn.load('unet', with_opt=False)
    unet_state = snapshot(learn.model)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')          # the file also holds D, which is not needed for figures
        learn.load('gan', with_opt=False)
    m = Path(out) / 'metrics.json'
    return unet_state, json.loads(m.read_text()) if m.exists() else None


def score_table(learn, unet_state, extra_metrics=lambda: []):
    "Rows grey / U-Net only / U-Net+GAN / truth of L1, PSNR, SSIM, colourfulness, delta CF (+ extra metrics)."
    dl = learn.dls.valid
    rows = {}
    for name, fn in [('grey (ab = 0)', lambda L, ab: ab * 0), ('U-Net only (L1)', _predict_with(learn, unet_state)),
                     ('U-Net + GAN', _predict_with(learn)), ('truth', lambda L, ab: ab)]:
        rows[name] = score_predictions(dl, fn, colour_metrics() + extra_metrics())
    return rows


def markdown_table(rows, title, judge='ResNet-20 top-1'):
    cols = list(dict.fromkeys(k for r in rows.values() for k in r))
    fmt = {'l1': '{:.4f}', 'psnr': '{:.2f}', 'ssim': '{:.4f}', 'colourfulness': '{:.2f}',
           'delta_colourfulness': '{:.2f}', 'top1': '{:.1%}', 'train_min': '{:.0f}'}
    names = {'l1': 'L1 (ab/110)', 'psnr': 'PSNR dB', 'ssim': 'SSIM', 'colourfulness': 'CF',
             'delta_colourfulness': 'ΔCF', 'top1': judge, 'train_min': 'train min'}
    lines = [f'**{title}**', '', '| | ' + ' | '.join(names.get(c, c) for c in cols) + ' |',
             '|---|' + '---|' * len(cols)]
    for r, vals in rows.items():
        cell = lambda c: ('—' if c not in vals else '∞' if c == 'psnr' and vals[c] >= 99
                          else fmt.get(c, '{:.4f}').format(vals[c]))
        lines.append(f'| {r} | ' + ' | '.join(cell(c) for c in cols) + ' |')
    return '\n'.join(lines) + '\n'


def fixed_batch(learn, n=8):
    "The same n validation images for every figure: evenly spaced through the (sorted) validation set."
    items = learn.dls.valid.items
    idx = np.linspace(0, len(items) - 1, n).round().astype(int)
    return learn.dls.test_dl([items[i] for i in idx], bs=n).one_batch()


def _grid(rgbs, label, scale):
    tiles = [(r.permute(1, 2, 0).clamp(0, 1).cpu().numpy() * 255).astype(np.uint8) for r in rgbs]
    row = Image.fromarray(np.concatenate(tiles, 1))
    row = row.resize((row.width * scale, row.height * scale), Image.NEAREST)
    canvas = Image.new('RGB', (row.width, row.height + 18), 'white')
    canvas.paste(row, (0, 18))
    ImageDraw.Draw(canvas).text((4, 3), label, fill='black')
    return canvas


def write_gif(path, L_, stages, scale=3, ms=1200):
    "Frames: the same images at each stage, e.g. [('grey input', ab0), ('U-Net only', ab1), ...]."
    frames = [_grid(decode_lab(L_, ab), label, scale) for label, ab in stages]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=ms, loop=0)
    return path


def stage_predictions(learn, unet_state, L_, ab):
    with torch.no_grad():
        return [('grey input', ab * 0), ('U-Net only (L1)', _predict_with(learn, unet_state)(L_, ab)),
                ('U-Net + GAN', _predict_with(learn)(L_, ab)), ('truth', ab)]


def plot_curves(path, curves, title):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, (xs, ys) in curves.items(): ax.plot(xs, ys, marker='o', label=label)
    ax.set_xlabel('epoch'); ax.set_ylabel('validation L1 on ab (ab/110)'); ax.set_title(title)
    ax.legend(); ax.grid(alpha=0.3)
    fig.tight_layout(); fig.savefig(path, dpi=100); plt.close(fig)
    return path


def save_json(path, obj): Path(path).write_text(json.dumps(obj, indent=1, default=float))

"""Shared machinery of the experiment scripts beside this file: scoring, the metrics table, the GIF and the
loss plot. The scripts choose the data, the encoders and the recipes."""
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from colourgan_fastai import colour_metrics, score_predictions

from colourgan_fastai.lab import decode_lab


def snapshot(model): return {k: v.clone() for k, v in model.state_dict().items()}


def last_fit_curve(learn, epochs):
    """Validation loss per epoch of the last `fit` that ran for `epochs` epochs; [] when `epochs` is 0, because the
    Recorder then still holds an earlier fit's values (or none at all)."""
    return [v[1] for v in learn.recorder.values] if epochs else []


def _predict_with(learn, state=None):
    """A predict(L, ab) function for score_predictions using the learner's model; or its copy with other weights
    (`state`, e.g. the phase-1 snapshot), which predicts plainly: no flip averaging or chroma gain set since."""
    model = learn.model
    if state is not None:
        import copy
        model = copy.deepcopy(learn.model)
        model.load_state_dict(state, strict=False)
        model.set_prediction(flip_average=False, chroma_gain=1.)
    model.eval()
    return lambda L, ab: model(L)


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
           'delta_colourfulness': '{:.2f}', 'top1': '{:.1%}', 'train_min': '{:.0f}',
           'spurious_colour': '{:.2%}'}
    names = {'l1': 'L1 (ab/110)', 'psnr': 'PSNR dB', 'ssim': 'SSIM', 'colourfulness': 'CF',
             'delta_colourfulness': 'ΔCF', 'top1': judge, 'train_min': 'train min',
             'spurious_colour': 'blotch pixels'}
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
    fig, ax = plt.subplots(figsize=(9, 3.5))
    for label, (xs, ys) in curves.items(): ax.plot(xs, ys, marker='o', label=label)
    ax.set_xlabel('epoch'); ax.set_ylabel('validation L1 on ab (ab/110)'); ax.set_title(title)
    ax.legend(loc='center left', bbox_to_anchor=(1.01, 0.5), fontsize='small')    # beside the plot: hides no point
    ax.grid(alpha=0.3)
    fig.tight_layout(); fig.savefig(path, dpi=100); plt.close(fig)
    return path


def save_json(path, obj): Path(path).write_text(json.dumps(obj, indent=1, default=float))

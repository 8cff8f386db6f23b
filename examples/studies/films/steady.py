"""Steady colours in films, measured: frame-by-frame colourisation against `SteadyChroma`, on clips with known
motion made from photos the model never saw (clips.py): a pan, a zoom, a still shot and a scene cut, each clean and
with film grain and brightness flicker. Per clip: flicker (the mean ab change between consecutive frames along the
true motion, on pixels that stay in view; metrics.flicker), per-frame PSNR, SSIM and ΔCF against the original
colour frames, and at a cut the largest ab difference between the two on the first frame of the new scene.
Writes a JSON of the numbers and, with --figure, frames of the grainy pan colourised both ways beside the flicker
of each frame.

    python examples/studies/films/steady.py --model runs/photos.pkl --out runs/films.json --figure images/films.png
"""
import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import skimage.data
import torch

from colourgan_fastai import colourize_video
from colourgan_fastai.clips import make_clip, write_clip, CLIP_KINDS
from colourgan_fastai.metrics import flicker, frame_ab, psnr, ssim, colourfulness

PHOTOS = {'astronaut': skimage.data.astronaut, 'coffee': skimage.data.coffee, 'chelsea': skimage.data.chelsea}


def frames_of(path):
    import av
    with av.open(str(path)) as c: return [f.to_ndarray(format='rgb24') for f in c.decode(video=0)]


def scores(frames, clip):
    T = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255
    truth = [clip.frame(t) for t in range(len(clip))]
    fl = flicker(frames, clip)
    cf = lambda fs: np.mean([colourfulness(T(a)).item() for a in fs])
    return {'flicker': float(np.mean([v for v in fl if v is not None])), 'flicker_per_frame': fl,
            'psnr': float(np.mean([psnr(T(a), T(b)).item() for a, b in zip(frames, truth)])),
            'ssim': float(np.mean([ssim(T(a), T(b)).item() for a, b in zip(frames, truth)])),
            'delta_cf': float(abs(cf(frames) - cf(truth)))}


def steady_floor(frames, clip):
    """The frames a perfectly steady colouriser would give: frame-by-frame `frames`' first chroma carried along the
    true motion for as long as a pixel stays in view (a new pixel takes its frame's own chroma), put on each frame's
    lightness and written as 8-bit RGB. Its flicker is what 8-bit output and the measure's own resampling leave: no
    steadying can go below it."""
    import cv2
    from colourgan_fastai.lab import lab_to_srgb8, rgb_to_lab
    out, carried = [], None
    for t, rgb in enumerate(frames):
        lab = rgb_to_lab(torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float() / 255).numpy()
        if carried is None or t in clip.cuts: carried = lab[1:]
        else:
            qx, qy, inview = clip.previous_position(t)
            warped = np.stack([cv2.remap(c, qx, qy, cv2.INTER_LINEAR) for c in carried])
            carried = np.where(inview, warped, lab[1:])
        out.append(lab_to_srgb8(torch.from_numpy(lab[0]), torch.from_numpy(carried)).permute(1, 2, 0).numpy())
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--model', required=True); p.add_argument('--out', default='runs/films.json')
    p.add_argument('--frames', type=int, default=32); p.add_argument('--size', type=int, nargs=2, default=[192, 144])
    p.add_argument('--figure')
    a = p.parse_args()
    photos = [f() for f in PHOTOS.values()]
    res, keep = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for noisy in (False, True):
            for kind in CLIP_KINDS:
                name = f"{kind}{'+grain+flicker' if noisy else ''}"
                clip = make_clip(photos[:2], kind, n=a.frames, size=tuple(a.size), grain=4 if noisy else 0,
                                 flicker=0.04 if noisy else 0)
                src = write_clip(clip, Path(tmp) / f'{kind}.mkv')
                runs = {s: frames_of(colourize_video(a.model, src, Path(tmp) / f'{kind}_{s}.mkv', codec='lossless',
                                                     steady=s, overwrite=True, display=False)) for s in (False, True)}
                r = {('steady' if s else 'frame_by_frame'): scores(f, clip) for s, f in runs.items()}
                r['flicker_ratio'] = r['steady']['flicker'] / max(r['frame_by_frame']['flicker'], 1e-9)
                r['steady_floor'] = float(np.mean([v for v in flicker(steady_floor(runs[False], clip), clip)
                                                   if v is not None]))
                if clip.cuts:
                    k = min(clip.cuts)
                    r['cut_max_ab_diff'] = float(np.abs(frame_ab(runs[True][k]) - frame_ab(runs[False][k])).max())
                res[name] = r
                if name == 'pan+grain+flicker': keep = dict(runs=runs, clip=clip, r=r)
                print(f"{name:22} flicker {r['frame_by_frame']['flicker']:.3f} -> {r['steady']['flicker']:.3f} "
                      f"({r['flicker_ratio']:.2f}x, perfectly steady {r['steady_floor']:.3f})  PSNR {r['steady']['psnr'] - r['frame_by_frame']['psnr']:+.3f} dB  "
                      f"SSIM {r['steady']['ssim'] - r['frame_by_frame']['ssim']:+.4f}  ΔCF {r['frame_by_frame']['delta_cf']:.2f}"
                      f" -> {r['steady']['delta_cf']:.2f}" + (f"  cut: max |Δab| {r['cut_max_ab_diff']:.2f}" if clip.cuts else ''))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=1))
    if a.figure: figure(keep, a.figure)


def change_map(frames, clip, t):
    "|Δab| of frame t against frame t-1 followed along the true motion (NaN where the point was out of view)."
    import cv2
    qx, qy, inview = clip.previous_position(t)
    prev = frame_ab(frames[t - 1])
    d = np.sqrt(((frame_ab(frames[t]) - np.stack([cv2.remap(c, qx, qy, cv2.INTER_LINEAR) for c in prev])) ** 2).sum(0))
    return np.where(inview, d, np.nan)


def figure(keep, path, shown=(8, 9, 10, 11)):
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    runs, clip, r = keep['runs'], keep['clip'], keep['r']
    fig = plt.figure(figsize=(13, 7.2))
    gs = fig.add_gridspec(4, len(shown) + 2, width_ratios=[1] * len(shown) + [0.45, 2.4])
    rows = [(False, 'frame by frame', False), (False, '|Δab| from the\nframe before', True),
            (True, 'steadied', False), (True, '|Δab| from the\nframe before', True)]
    for row, (s, label, change) in enumerate(rows):
        for j, t in enumerate(shown):
            ax = fig.add_subplot(gs[row, j])
            if change: im = ax.imshow(change_map(runs[s], clip, t), cmap='magma', vmin=0, vmax=4)
            else: ax.imshow(runs[s][t])
            ax.set_xticks([]); ax.set_yticks([])
            if j == 0: ax.set_ylabel(label)
            if row == 0: ax.set_title(f'frame {t}')
    fig.colorbar(im, ax=fig.axes, location='left', shrink=0.4, label='|Δab|')
    ax = fig.add_subplot(gs[:, len(shown) + 1])
    for s, label in ((False, 'frame by frame'), (True, 'steadied')):
        fl = r['steady' if s else 'frame_by_frame']['flicker_per_frame']
        ax.plot(range(len(fl)), [np.nan if v is None else v for v in fl], label=label)
    ax.set_xlabel('frame'); ax.set_ylabel('flicker: mean |Δab| along the motion'); ax.legend(); ax.grid(alpha=0.3)
    ax.set_title('a pan with grain and brightness flicker')
    fig.savefig(path, dpi=90, bbox_inches='tight')
    print(f"wrote {path}")


if __name__ == '__main__':
    main()

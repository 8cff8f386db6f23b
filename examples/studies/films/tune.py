"""Tuning `SteadyChroma`: the flicker ratio (steadied / frame by frame) on the study's clips for several settings,
the network run once per clip (the settings act after it). Faster than steady.py (no encoding), the same measure.
With --cf each clip also shows how far steadying moves the frames' mean colourfulness (steadied − frame by frame).

    python examples/studies/films/tune.py --model runs/photo_small.pkl "dict(margin=0, scale=1)" "dict()" "dict(margin=4)"
"""
import argparse

import numpy as np
import skimage.data
import torch

from colourgan_fastai import load_colourizer
from colourgan_fastai.clips import make_clip, CLIP_KINDS
from colourgan_fastai.inference import GreyImage, _predict, _compose, _default_render_size
from colourgan_fastai.metrics import colourfulness, flicker
from colourgan_fastai.models import get_model
from colourgan_fastai.video import SteadyChroma


def flicker_and_colour(clip, greys, abs_, steadier=None):
    "(the clip's flicker, its frames' mean colourfulness), frame by frame or through `steadier`."
    frames = []
    for g, ab in zip(greys, abs_):
        if steadier is not None: ab = steadier.frame(g, ab)
        frames.append(np.asarray(_compose(g, ab)))
    cf = np.mean([colourfulness(torch.from_numpy(f).permute(2, 0, 1)[None] / 255.).item() for f in frames])
    return float(np.mean([v for v in flicker(frames, clip) if v is not None])), float(cf)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--model', required=True); p.add_argument('--frames', type=int, default=32)
    p.add_argument('--cf', action='store_true', help="also the change of colourfulness steadying makes, per clip")
    p.add_argument('settings', nargs='*', default=['dict()'], help="SteadyChroma keyword arguments, e.g. 'dict(keep=0.9)'")
    a = p.parse_args()
    G = get_model(load_colourizer(a.model).model)
    photos = [skimage.data.astronaut(), skimage.data.coffee()]
    clips = {}
    for noisy in (False, True):
        for kind in CLIP_KINDS:
            if kind == 'still' and not noisy: continue                      # nothing moves or changes: no ratio
            clip = make_clip(photos, kind, n=a.frames, size=(192, 144), grain=4 if noisy else 0,
                             flicker=0.04 if noisy else 0)
            greys = [GreyImage.create(clip.frame(t)) for t in range(len(clip))]
            with torch.inference_mode(): abs_ = _predict(G, greys, _default_render_size(G), 8)
            clips[kind + ('+grain' if noisy else '')] = (clip, greys, abs_, flicker_and_colour(clip, greys, abs_))
    for setting in a.settings:
        kw = eval(setting, {'dict': dict})
        res = {n: (flicker_and_colour(c, g, ab, SteadyChroma(**kw)), fbf) for n, (c, g, ab, fbf) in clips.items()}
        print(f"{setting:28} " + '  '.join(f"{n} {st[0] / fbf[0]:.2f}" + (f" ({st[1] - fbf[1]:+.2f})" if a.cf else '')
                                           for n, (st, fbf) in res.items()), flush=True)


if __name__ == '__main__':
    main()

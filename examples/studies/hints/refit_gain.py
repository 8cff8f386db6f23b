"""Fit a trained model's chroma gain again, to another target, on the very images `colourgan train --calibrate`
set aside for it (the same data, seed and share), and export the result. Training never sees the gain, so this is
what `colourgan train ... --calibrate GAP` gives with that GAP, without training again.

    python examples/studies/hints/refit_gain.py runs/phg_s42.pkl ../shared/data/imagenette2-160 42 8.5 runs/phg_s42_g85.pkl
    python examples/studies/hints/refit_gain.py runs/phg_s42.pkl ../shared/data/imagenette2-160 42 10.5 runs/phg_s42_w105.pkl --whole

--whole: fit on the set-aside photos whole, at their stored size, through `colourize` (`calibrate_colourfulness(...,
photos=...)`), instead of on their training-size crops. --always-pad: with the render padding `colourize` used when
the hint-free photo colourisers were scored (reflect padding at every render size, as the parity study's
`always-pad`), so that the gain is fitted as `score_always_pad.py` scores.
"""
import sys

from colourgan_fastai import calibrate_colourfulness, load_colourizer
from colourgan_fastai.data import dls_from_folder, hold_out
from colourgan_fastai.models import colour_unet_of
from colourgan_fastai.recipe import Recipe


def main(model, data, seed, gap, out, whole=False):
    seed, gap = int(seed), float(gap)
    learn = load_colourizer(model)
    dls, _ = dls_from_folder(data, seed=seed)                  # as `colourgan train --data DATA --seed SEED` builds them
    n = Recipe.photos().n_calibration(len(dls.train_ds))
    _, held = hold_out(dls, n, seed)
    before = float(colour_unet_of(learn).chroma_gain)
    if whole: gain = calibrate_colourfulness(learn, gap=gap, photos=list(held.dataset.items))
    else: gain = calibrate_colourfulness(learn, held, gap=gap)
    print(f"chroma gain {before:.3f} -> {gain:.3f}: the {n} set-aside images' colourfulness the truth's minus {gap:g}"
          f"{' (whole photos)' if whole else ''}")
    learn.export(out)
    print(f"wrote {out}")


if __name__ == '__main__':
    args = [a for a in sys.argv[1:] if a not in ('--whole', '--always-pad')]
    if len(args) != 5: raise SystemExit(__doc__)
    if '--always-pad' in sys.argv:
        from score_always_pad import use_always_pad
        use_always_pad()
    main(*args, whole='--whole' in sys.argv)

"""A chroma gain on a finished hinted colouriser: how much colour and PSNR does it give without hints and with 10
(validation photos at 96 px, the study's seeded truth hints), and, with --export, the model with one gain set, to
score through `colourize` (examples/photo_figure.py --score).

    python examples/studies/hints/chroma_gain.py runs/photos_hints.pkl --gains 1 1.05 1.1 1.15 --n-valid 600
    python examples/studies/hints/chroma_gain.py runs/photos_hints.pkl --gains 1.08 --n-valid 0 --export runs/photos_hints_g108.pkl
"""
import argparse

from colourgan_fastai import imagenette_dls, load_colourizer
from colourgan_fastai.models import get_model
from hints_study import score


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('model'); p.add_argument('--gains', nargs='+', type=float, default=[1.0, 1.05, 1.1, 1.15])
    p.add_argument('--data', default='../shared/data'); p.add_argument('--n-valid', type=int, default=600)
    p.add_argument('--export', help='write the model with the (single) gain set here')
    a = p.parse_args()
    learn = load_colourizer(a.model)
    m = learn.model
    G = get_model(m)                                                     # the U-Net that holds the gain
    if a.n_valid:
        dls = imagenette_dls(a.data, n_train=64, size=96, bs=32, seed=0, n_valid=a.n_valid)
        for g in a.gains:
            G.set_prediction(chroma_gain=g)
            r = {n: score(m, dls.valid, n) for n in (0, 10)}
            print(f"gain {g:.2f}: no hints {r[0]['psnr']:.2f} dB, CF {r[0]['colourfulness']:.2f}, blotch "
                  f"{r[0]['spurious_colour']:.2%}; 10 hints {r[10]['psnr']:.2f} dB, CF {r[10]['colourfulness']:.2f}", flush=True)
    if a.export:
        if len(a.gains) != 1: raise SystemExit('--export takes one gain')
        G.set_prediction(chroma_gain=a.gains[0]); learn.export(a.export); print(f"wrote {a.export}")


if __name__ == '__main__':
    main()

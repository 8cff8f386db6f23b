"""`examples/photo_figure.py` (e.g. `--score`) with the render padding `colourize` used when the hint-free photo
colourisers were scored: reflect padding at every render size (the parity study's `always-pad`). Today `colourize`
leaves a render at the training size itself unpadded; scoring a new model this way compares it with those numbers.

    python examples/studies/hints/score_always_pad.py --model runs/phg_s42_w105.pkl --score
"""
import sys
from pathlib import Path


def use_always_pad():
    "Make `colourize` reflect-pad every render, the training size's too, as when the hint-free models were scored."
    import colourgan_fastai.inference as inf
    inf._border = lambda h, w, size=None: inf._reflect_border(h, w)


if __name__ == '__main__':
    use_always_pad()
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))          # examples/, for photo_figure
    import photo_figure
    photo_figure.main(sys.argv[1:])

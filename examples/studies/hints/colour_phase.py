"""The photo recipe's colour epoch alone, from a hinted L1 U-Net, with a share `p` of the training photos given no
hints (`HintSampler`'s geometric parameter; the paper's and the library's is 1/8). Does giving more photos no hints
in the colour epoch bring the no-hint colour back to the hint-free colouriser's?

    python examples/studies/hints/colour_phase.py runs/photos_hints_unet.pth 0.4 runs/photos_colour_p04
    python examples/studies/hints/colour_phase.py runs/photos_hints_unet.pth 0.125 runs/photos_colour_control

Reads the validation columns (no hints and 10 hints) from the printed table; 6 minutes per run on 2 cores.
"""
import sys

import colourgan_fastai.hints as hints


def main(unet, p, out, data='../shared/data/imagenette2-160', weights='../shared/weights/mobilenet_v2_imagenet.pth'):
    hints.HintSampler.__init__.__defaults__ = (float(p), 9, 64)          # every HintSampler built from here on
    from colourgan_fastai.cli import main as cli
    return cli(['train', '--data', data, '--arch', 'mobilenet_v2', '--encoder-weights', weights, '--hints',
                '--seed', '42', '--init', unet, '--epochs', '0', '--out', out, '--overwrite'])


if __name__ == '__main__':
    if len(sys.argv) != 4: raise SystemExit(__doc__)
    sys.exit(main(*sys.argv[1:]))

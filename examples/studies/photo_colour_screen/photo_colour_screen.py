"""Screen colour phases for photos (README, Case 2: *Photos*): one colour epoch from the same phase-1 model, with the
batch-mean colourfulness gap (`ColourfulnessLoss`, the library's) or a per-image gap, scored on the Imagenette
validation photos at 96 px (fidelity, colourfulness and blotch pixels). A screen: the validation photos both score
and choose here, so read it as a comparison of settings, not a held-out test.

    python bench/photo_colour_screen.py --name batch05 --cf 0.5 --init runs/encoder_transfer_w/imagenet_s42/phase1.pth
    python bench/photo_colour_screen.py --name image05 --cf 0.5 --per-image --init ...
    python bench/photo_colour_screen.py --name feat03 --feature 0.3 --init ...        # + FeatureLoss
"""
import argparse
import json
import sys
import time
from pathlib import Path

from colourgan_fastai.recipe import PHOTO_COLOURFULNESS_WEIGHT, PSNR_WEIGHT

ROOT = Path(__file__).resolve().parents[1]


def parser():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--name', required=True, help='the variant: <out>/<name>.json and <name>.pkl')
    p.add_argument('--init', required=True, help='a MobileNetV2 phase-1 model saved by learn.save (e.g. '
                                                 'runs/encoder_transfer_w/imagenet_s42/phase1.pth)')
    p.add_argument('--data', default='../shared/data'); p.add_argument('--out', default='runs/photo_screen')
    p.add_argument('--weights', default='../shared/weights/mobilenet_v2_imagenet.pth')
    p.add_argument('--cf', type=float, default=PHOTO_COLOURFULNESS_WEIGHT, help='colourfulness weight')
    p.add_argument('--per-image', action='store_true', help="each image's own colourfulness gap, not the batch mean's")
    p.add_argument('--psnr', type=float, default=PSNR_WEIGHT, help='PSNRLoss weight')
    p.add_argument('--feature', type=float, default=0., help="FeatureLoss weight through the encoder's own MobileNetV2")
    p.add_argument('--lr', type=float, default=3e-4); p.add_argument('--size', type=int, default=96)
    p.add_argument('--n-train', type=int); p.add_argument('--n-valid', type=int)
    p.add_argument('--bs', type=int, default=32)
    p.add_argument('--seed', type=int, default=42)
    return p


def main(argv=None):
    a = parser().parse_args(argv)
    sys.path[:0] = [str(ROOT / 'examples'), str(ROOT / 'bench')]
    from fastai.torch_core import set_seed
    import experiment as ex
    from colour_phase_screen import per_image_cf_loss, loss_columns
    from encoder_transfer import metrics                      # Case 2's columns: colour_metrics + SpuriousColour
    from colourgan_fastai import imagenette_dls, colour_learner, score_predictions, train_semantic_colour, encoder_classifier
    set_seed(a.seed)
    dls = imagenette_dls(a.data, n_train=a.n_train, size=a.size, bs=a.bs, seed=a.seed, n_valid=a.n_valid)
    learn = colour_learner(dls, arch='mobilenet_v2', weights=a.weights, metrics=metrics())
    out = Path(a.out).absolute(); out.mkdir(parents=True, exist_ok=True)
    learn.path, learn.model_dir = out, '.'
    learn.load(Path(a.init).absolute().with_suffix(''), with_opt=False)
    per_image = [per_image_cf_loss(a.cf)] if a.per_image and a.cf else []
    t0 = time.time()
    train_semantic_colour(learn, 0, 1, colour_lr=a.lr, colourfulness_weight=0 if a.per_image else a.cf,
                          psnr_weight=a.psnr, colour_cbs=per_image,        # the recipe's colour phase alone
                          feature_net=encoder_classifier('mobilenet_v2', True, a.weights) if a.feature else None,
                          feature_weight=a.feature)
    res = dict(args=vars(a), train_s=time.time() - t0, terms=loss_columns(learn),
               valid=score_predictions(dls.valid, ex._predict_with(learn), metrics()))
    ex.save_json(out / f'{a.name}.json', res)
    learn.export(out / f'{a.name}.pkl')          # for examples/photo_figure.py --model
    print(a.name, json.dumps(res['valid']))
    return res


if __name__ == '__main__': main()

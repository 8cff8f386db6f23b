"""`colourgan` command line: demo, train, colourize, app, export."""
import argparse
import sys
import time
import warnings
from pathlib import Path

__all__ = ['main', 'EXIT_ERROR', 'EXIT_SOME_FAILED']

EXIT_SOME_FAILED = 1    # the run finished, but part failed: unreadable input files (listed), or train --calibrate
EXIT_ERROR = 2          # nothing done, or the run stopped: bad arguments, missing inputs, clashes, unwritable output


class _Parser(argparse.ArgumentParser):
    "argparse, with an error as one line (no usage dump) and EXIT_ERROR."
    def error(self, message):
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_ERROR)


def _int_at_least(least):
    def parse(text):
        try: v = int(text)
        except ValueError: raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if v < least: raise argparse.ArgumentTypeError(f"must be at least {least}, got {v}")
        return v
    parse.__name__ = f'integer >= {least}'
    return parse


def _fmt(d): return '  '.join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in d.items())


DEMO_PHOTOS = ('astronaut.png', 'coffee.png', 'chelsea.png', 'rocket.jpg', 'motorcycle_left.png', 'motorcycle_right.png')


def _save_demo_figure(learn, path):
    "Whole held-out strips of the embedded photos at full resolution: grey | colourize() | original."
    from fastai.distributed import rank_distrib
    if rank_distrib(): return None                  # several processes: only rank 0 writes files
    from .figures import comparison_figure, sample_heldout_strips
    return comparison_figure(learn, sample_heldout_strips(names=DEMO_PHOTOS), path)


def cmd_demo(a):
    from fastai.torch_core import set_seed
    from . import sample_photos_dls, colour_learner, colour_metrics, score_predictions
    from .recipe import train_l1_then_gan
    set_seed(a.seed)
    t0 = time.time()
    dls = sample_photos_dls(size=a.size, n=a.n, bs=a.bs, seed=a.seed)
    learn = colour_learner(dls, arch='resnet20_cifar', pretrained=False, metrics=colour_metrics())
    print(f"demo: {len(dls.train_ds)} training / {len(dls.valid_ds)} held-out crops of scikit-image's photos, "
          f"{a.size} px; U-Net on ResNet-20: {a.epochs} L1 epochs, then {a.gan_epochs} GAN epochs")
    train_l1_then_gan(learn, a.epochs, a.gan_epochs, a.lr, a.gan_lr, a.lambda_l1)
    grey = score_predictions(dls.valid, lambda L, ab: ab * 0)
    names = learn.recorder.metric_names[1:-1]
    final = dict(zip(names, learn.recorder.values[-1]))
    model = {'l1': final['valid_loss'], **{k: final[k] for k in ('psnr', 'ssim', 'colourfulness', 'delta_colourfulness')}}
    learn.remove_cb(learn.gan_colourizer)
    fig = _save_demo_figure(learn, a.out)
    Path(a.model).parent.mkdir(parents=True, exist_ok=True)
    learn.export(Path(a.model).absolute())
    print(f"demo metrics (held-out): model  {_fmt(model)}")
    print(f"demo metrics (held-out): grey   {_fmt(grey)}")
    print(f"wrote {fig} and {a.model} in {time.time() - t0:.0f} s")
    return 0


def cmd_train(a):
    from .train_command import cmd_train as train
    return train(a)


def _device(name):
    "A torch device the machine has, or a clear error."
    import torch
    try: dev = torch.device(name)
    except RuntimeError: raise ValueError(f"unknown device {name!r} (use cpu, cuda or cuda:N)") from None
    if dev.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: this machine has no usable CUDA GPU; use --device cpu")
    if dev.type == 'cuda' and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"--device {name}: there are only {torch.cuda.device_count()} GPU(s)")
    if dev.type not in ('cpu', 'cuda'): raise ValueError(f"--device {name}: only cpu and cuda are supported")
    return dev


def cmd_colourize(a):
    from .inference import load_colourizer
    from .folders import colourize_files, folder_jobs, plan_outputs
    missing = [s for s in a.inputs if not Path(s).exists()]
    if missing: raise FileNotFoundError(f"input(s) not found: {', '.join(missing)}")
    out = Path(a.output)
    if out.exists() and not out.is_dir(): raise NotADirectoryError(f"the output {out} is an existing file, not a folder")
    device = _device(a.device)
    jobs, not_images = [], []
    for src in map(Path, a.inputs):
        jobs += folder_jobs(src, out / src.resolve().name if src.is_dir() else out, a.format, not_images, a.video_codec)
    plan_outputs(jobs, a.overwrite)                 # every clash and unwritable folder, before the model loads
    hints = None
    if a.hints:
        from .hints import read_hints_file
        from .folders import match_hints
        hints = match_hints(read_hints_file(a.hints), [f for f, _ in jobs], Path(a.hints).parent, source=a.hints)
    learn = load_colourizer(a.model, cpu=device.type == 'cpu')
    learn.model.to(device)
    if a.flip_average:
        from .models import use_flip_average
        use_flip_average(learn)
    res = colourize_files(learn, jobs, a.render_size, a.bs, overwrite=a.overwrite, hints=hints,
                          video_codec=a.video_codec, steady=a.steady)
    print(f"colourised {len(res['written'])} file(s) into {out}; {len(res['skipped'])} existed already "
          f"(--overwrite to redo), {len(res['failed'])} could not be read")
    if not_images:
        print(f"left alone {len(not_images)} file(s) that are not images: " +
              ', '.join(map(str, not_images[:5])) + (', ...' if len(not_images) > 5 else ''))
    return EXIT_SOME_FAILED if res['failed'] else 0


def cmd_export(a):
    from .onnx import export_onnx
    p = export_onnx(a.model, a.onnx)
    print(f"wrote {p} (input 'L': N x 1 x H x W, L/50-1; output 'ab': N x 2 x H x W, ab/110)")
    return 0


def cmd_app(a):
    if not a.model:
        raise ValueError("--model is needed: a file written by learn.export or `colourgan train` (`make demo` "
                         "writes models/demo.pkl: then `colourgan app --model models/demo.pkl`)")
    if not Path(a.model).is_file(): raise FileNotFoundError(f"model file {a.model} not found")
    device = _device(a.device)
    from .app import serve
    print(f"serving on http://{a.host}:{a.port or 7860} (Ctrl-C stops)")
    serve(a.model, a.host, a.port, device, a.max_megapixels)
    return 0


def _recipe_default(field):
    "What each named recipe sets `field` to, for a help text: the Recipe objects' own values."
    from .recipe import Recipe, RECIPE_NAMES
    show = lambda v: 'off' if v is False or v is None else 'on' if v is True else f'{v:g}'
    return 'recipe default: ' + ', '.join(f'{n} {show(getattr(Recipe.named(n), field))}' for n in RECIPE_NAMES)


def build_parser():
    from .recipe import RECIPE_NAMES
    p = _Parser(prog='colourgan', description=__doc__)
    sub = p.add_subparsers(dest='cmd', required=True, parser_class=_Parser)
    d = sub.add_parser('demo', help='train briefly on the embedded sample photos and write a results picture')
    d.add_argument('--epochs', type=int, default=4); d.add_argument('--gan-epochs', type=int, default=2)
    d.add_argument('--size', type=int, default=64); d.add_argument('--n', type=int, default=1500)
    d.add_argument('--bs', type=int, default=32); d.add_argument('--lr', type=float, default=2e-3)
    d.add_argument('--gan-lr', type=float, default=2e-4); d.add_argument('--lambda-l1', type=float, default=100.)
    d.add_argument('--seed', type=int, default=42)
    d.add_argument('--out', default='runs/demo_results.png', help='the picture (default: %(default)s)')
    d.add_argument('--model', default='models/demo.pkl', help='the exported model (default: %(default)s)')
    d.set_defaults(func=cmd_demo)

    t = sub.add_parser('train', help='train a colouriser on a folder of images or a known data set',
                       description='Train a colouriser. The data set is found from --data; the recipe defaults to the '
                                   "data set's (cifar10 on CIFAR-10, photos elsewhere), and each option overrides its part.")
    t.add_argument('--data', required=True, help="a folder of images (with train/ and valid/, val/ or test/ folders "
                   "they are the split), or one in CIFAR-10's, STL-10's or Imagenette's layout (e.g. the folder holding "
                   "cifar10/); the names cifar10 and imagenette download those data sets")
    t.add_argument('--arch', default='resnet20_cifar', help='encoder: resnet20_cifar, resnet18, resnet34, resnet50 or '
                   'mobilenet_v2 (default: %(default)s)')
    t.add_argument('--encoder-weights', metavar='FILE', help="the encoder's pretrained weights (default: downloaded)")
    t.add_argument('--recipe', choices=RECIPE_NAMES, help="cifar10, photos or seed (default: cifar10 on CIFAR-10, "
                   "photos elsewhere; README, Recipes)")
    t.add_argument('--out', default='models/colouriser', help='path stem of the model files (default: %(default)s)')
    t.add_argument('--epochs', type=_int_at_least(0), help=f'L1 epochs ({_recipe_default("epochs")})')
    t.add_argument('--colour-epochs', type=_int_at_least(0), help=f'colour-phase epochs ({_recipe_default("colour_epochs")})')
    t.add_argument('--gan-epochs', type=_int_at_least(0), help=f'GAN epochs ({_recipe_default("gan_epochs")})')
    t.add_argument('--size', type=_int_at_least(8), help='image size (default: 32 on CIFAR-10, 96 on STL-10 and '
                   'Imagenette, 64 for a folder)')
    t.add_argument('--bs', type=_int_at_least(1), help='batch size (default: 64 on CIFAR-10, else 32)')
    t.add_argument('--init', metavar='MODEL', help="start from the weights of a model train saved (e.g. "
                   "models/colouriser_unet.pth; with --epochs 0, only the colour phase runs)")
    t.add_argument('--seed', type=int, default=42, help='random seed (default: %(default)s)')
    t.add_argument('--hints', action=argparse.BooleanOptionalAction, help='learn colour hints too: the model then '
                   'also follows points a person puts (colourize --hints, the web page); without any it colourises as '
                   'a hint-free model does. --no-hints: the hint-free recipe (on photos also without its chroma gain) '
                   f'({_recipe_default("hints")})')
    t.add_argument('--overwrite', action='store_true', help='replace model files that exist')
    t.add_argument('--bf16', action='store_true', help='bf16 mixed precision: on a GPU, or a CPU with bf16 units '
                   '(AVX512-BF16 or AMX), about 1.5x faster; on a CPU without them 10-25x SLOWER, and train warns')
    v = t.add_argument_group('advanced', 'the recipe, part by part, and data options')
    v.add_argument('--no-pretrained', action='store_true', help='a random encoder (no weights)')
    for name, kind, what in (('lr', float, 'L1 phase peak learning rate'), ('colour-lr', float, 'colour phase learning rate'),
                             ('gan-lr', float, 'GAN phase learning rate'), ('lambda-l1', float, 'GAN: weight of L1 beside BCE'),
                             ('feature-weight', float, "FeatureLoss through the encoder's own network, both phases"),
                             ('class-weight', float, "class guidance through the encoder's own classifier, both phases"),
                             ('colourfulness-weight', float, "the colour phase's ColourfulnessLoss"),
                             ('psnr-weight', float, "the colour phase's PSNRLoss"),
                             ('calibration-share', float, 'share of the training images kept from the last phase to fit '
                                                          'the chroma gain on')):
        v.add_argument(f'--{name}', type=kind, help=f"{what} ({_recipe_default(name.replace('-', '_'))})")
    v.add_argument('--flip-average', action=argparse.BooleanOptionalAction,
                   help=f"predictions average each image and its mirror image ({_recipe_default('flip_average')})")
    v.add_argument('--calibrate', type=float, metavar='GAP', help="after training, fit the chroma gain that makes the "
                   f"set-aside images' colourfulness the truth's minus GAP ({_recipe_default('calibrate')})")
    v.add_argument('--no-calibrate', action='store_true', help='fit no chroma gain')
    v.add_argument('--calibrate-whole', action=argparse.BooleanOptionalAction, help='fit the chroma gain on the '
                   'set-aside photos whole, at their stored size, through colourize (the colour a user sees), not on '
                   f"their training-size crops ({_recipe_default('calibrate_whole')})")
    v.add_argument('--progressive', type=_int_at_least(8), metavar='SIZE', help='progressive resizing: the first '
                   'L1 epochs train on the same images at SIZE px (default: off)')
    v.add_argument('--progressive-epochs', type=_int_at_least(0), help='--progressive: how many (default: half)')
    v.add_argument('--n-train', type=_int_at_least(1), help='a seeded subset of the training images (default: all)')
    v.add_argument('--n-valid', type=_int_at_least(1), help='a seeded subset of the validation images (default: all)')
    v.add_argument('--cache', action='store_true', help='decode every image once and batch from memory (centre crops; '
                   'CIFAR-10 and STL-10 always do)')
    t.set_defaults(func=cmd_train)

    c = sub.add_parser('colourize', aliases=['colourise'], help='colourise photos, films or folders with an exported model')
    c.add_argument('inputs', nargs='+', metavar='INPUT', help='photos, films or folders (searched recursively)')
    c.add_argument('-o', '--output', required=True, help='output folder (folders keep their relative paths)')
    c.add_argument('--model', required=True, help='the .pkl written by learn.export / colourgan train')
    c.add_argument('--render-size', type=_int_at_least(8),
                   help='short side at which chroma is predicted (default: training size; at least 8)')
    c.add_argument('--device', default='cpu', help='cpu, cuda or cuda:N')
    c.add_argument('--bs', type=_int_at_least(1), default=16, help='images per batch (default 16)')
    c.add_argument('--format', choices=['auto', 'png', 'tiff', 'jpg'], default='auto',
                   help='auto (default): PNG/TIFF/BMP/PPM inputs keep their format, others (JPEG, GIF, WebP) are '
                        'written as PNG, so the lightness stays the input\'s; jpg is lossy (L changes slightly)')
    c.add_argument('--overwrite', action='store_true', help='redo outputs that exist (inputs are never written)')
    c.add_argument('--flip-average', action='store_true', help="average each prediction with its mirror image's "
                   '(twice the time; on photos +0.05-0.07 dB and a tenth fewer blotch pixels: docs/experiments/photos.md)')
    c.add_argument('--video-codec', choices=['h264', 'lossless'], default='h264',
                   help='films: h264 (default; MP4, plays everywhere, L within a few units) or lossless (FFV1 in MKV)')
    c.add_argument('--no-steady', dest='steady', action='store_false',
                   help='films: colourise frame by frame (default: colours made steady along the motion)')
    c.add_argument('--hints', metavar='FILE', help='colour hints for a model trained with --hints: a JSON file mapping '
                   'images to points, e.g. {"photo.jpg": [[120, 80, "#c03020"]]} (x, y in the photo\'s pixels; '
                   'docs/usage.md)')
    c.set_defaults(func=cmd_colourize)

    w = sub.add_parser('app', help='serve a web page to colourise photos (needs the [app] extra: Gradio)')
    w.add_argument('--model', help='the .pkl written by learn.export / colourgan train (make demo: models/demo.pkl)')
    w.add_argument('--host', default='127.0.0.1', help='address to bind (default 127.0.0.1: this machine only)')
    w.add_argument('--port', type=_int_at_least(1), help='port (default: 7860 or the next free one)')
    w.add_argument('--device', default='cpu', help='cpu, cuda or cuda:N')
    w.add_argument('--max-megapixels', type=float, default=40., help='largest image accepted (default 40 MP)')
    w.set_defaults(func=cmd_app)

    e = sub.add_parser('export', help='export the generator of an exported model to ONNX')
    e.add_argument('--model', required=True); e.add_argument('--onnx', required=True, help='output .onnx path')
    e.set_defaults(func=cmd_export)
    return p


def main(argv=None):
    try: a = build_parser().parse_args(argv)
    except SystemExit as e: return e.code
    try:
        with warnings.catch_warnings():
            # fastai's own imports warn about pandas and torch.jit deprecations: not the user's business
            warnings.filterwarnings('ignore', module=r'(fastai|torch|pandas|fastcore)\.')
            warnings.filterwarnings('ignore', category=FutureWarning, message=r'.*torch\.jit')
            warnings.filterwarnings('ignore', message=r".*mode\.chained_assignment")
            return a.func(a)
    except (OSError, ValueError) as e:
        print(f"colourgan {a.cmd}: error: {e}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == '__main__': sys.exit(main())

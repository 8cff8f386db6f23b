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


def _dls_for(a):
    from . import cifar10_dls, stl10_dls, colour_dls
    if a.dataset == 'cifar10':
        return cifar10_dls(a.data, n_train=a.n_train, size=a.size or 32, bs=a.bs or 64, seed=a.seed, n_valid=a.n_valid)
    if a.dataset == 'stl10':
        if not a.data: raise ValueError("--dataset stl10 needs --data (the folder with stl10_binary/)")
        return stl10_dls(a.data, n_train=a.n_train, size=a.size or 96, bs=a.bs or 32, seed=a.seed, n_valid=a.n_valid)
    if a.dataset == 'imagenette':
        from .data import imagenette_dls
        return imagenette_dls(a.data, n_train=a.n_train, size=a.size or 96, bs=a.bs or 32, seed=a.seed,
                              n_valid=a.n_valid, cache=a.cache)
    if not a.data: raise ValueError("--dataset folder needs --data (a folder of images)")
    return colour_dls(a.data, size=a.size or 64, bs=a.bs or 32, valid=a.valid, seed=a.seed, n_train=a.n_train,
                      cache=a.cache)


def _recipe_defaults(a, has_classifier):
    """Fill in the options left unset: for the semantic recipe on CIFAR-10, `CIFAR10_RECIPE` (README, Case 1, step 19);
    elsewhere the plain recipes' settings. Returns a line saying which CIFAR-10 settings were taken, or None."""
    from .recipe import CIFAR10_RECIPE as R, COLOURFULNESS_WEIGHT, PHOTO_COLOURFULNESS_WEIGHT, PSNR_WEIGHT
    cifar = a.recipe == 'semantic' and a.dataset == 'cifar10'
    unset = {k for k in ('epochs', 'class_weight', 'colourfulness_weight', 'psnr_weight', 'flip_average', 'calibrate')
             if getattr(a, k) is None}
    if a.no_calibrate:
        if a.calibrate is not None: raise ValueError("--calibrate GAP and --no-calibrate contradict each other")
        unset.discard('calibrate')
    if a.epochs is None: a.epochs = R['epochs'] if cifar else {'seed': 20, 'semantic': 4}[a.recipe]
    if a.class_weight is None: a.class_weight = R['class_weight'] if cifar and has_classifier else 0.
    if a.colourfulness_weight is None:              # photos: 1.5 paints them a sepia cast (README, Case 2)
        a.colourfulness_weight = R['colourfulness_weight'] if cifar else \
            COLOURFULNESS_WEIGHT if a.dataset == 'cifar10' else PHOTO_COLOURFULNESS_WEIGHT
    if a.psnr_weight is None: a.psnr_weight = R['psnr_weight'] if cifar else PSNR_WEIGHT
    if a.flip_average is None: a.flip_average = R['flip_average'] if cifar else False
    if a.calibrate is None and not a.no_calibrate and cifar: a.calibrate = R['calibrate']
    if 'calibrate' in unset and cifar and a.calibration_images is None and a.colour_calibration_images is None:
        a.colour_calibration_images = 'share'                    # 4 % of the training images: sized once they load
    if not cifar or not unset: return None
    said = {'epochs': f"{a.epochs} phase-1 epochs",
            'class_weight': f"class guidance {a.class_weight:g}" if a.class_weight else
                            "no class guidance (the encoder has no pretrained classifier)",
            'colourfulness_weight': f"ColourfulnessLoss {a.colourfulness_weight:g}",
            'psnr_weight': f"PSNRLoss {a.psnr_weight:g}", 'flip_average': 'flip averaging',
            'calibrate': f"a chroma gain fitted to the truth's colourfulness minus {a.calibrate:g}"}
    return ("train: the CIFAR-10 recipe (README, Case 1, steps 19-20) for what was not given: "
            + ', '.join(said[k] for k in said if k in unset))


def cmd_train(a):
    from fastai.torch_core import set_seed
    from . import colour_learner, colour_metrics, CachedDL, encoder_classifier, ProgressiveResizing, n_classes
    from .recipe import train_l1_then_gan, train_semantic_colour, FEATURE_WEIGHT, calibration_images
    out = Path(a.out)
    writes = [out.parent / (out.name + end) for end in ('_unet.pth', '.pth', '.pkl')]
    there = [str(f) for f in writes if f.exists()]
    if there and not a.overwrite: raise FileExistsError(f"{', '.join(there)} exist(s); pass --overwrite to replace")
    if a.init and Path(a.init).with_suffix('.pth').absolute() in [f.absolute() for f in writes]:
        raise ValueError(f"--init {a.init} is a file this run writes; give --out another name")
    if a.calibration_images is not None and a.colour_calibration_images is not None:
        raise ValueError("--calibration-images keeps images from both phases, --colour-calibration-images from the "
                         "colour phase only: give one")
    if a.colour_calibration_images is not None and a.recipe == 'seed':
        raise ValueError("--colour-calibration-images keeps images from the semantic recipe's colour phase; the seed "
                         "recipe has none (--calibration-images N keeps them from its training)")
    pretrained = not a.no_pretrained
    explicit_guide = a.class_weight
    own = encoder_classifier(a.arch, pretrained, a.encoder_weights) if a.recipe == 'semantic' else None
    if explicit_guide and own is None: raise ValueError("--class-weight needs an encoder with a pretrained classifier")
    preset = _recipe_defaults(a, own is not None)
    epochs = a.epochs
    small_epochs = epochs // 2 if a.progressive_epochs is None else a.progressive_epochs
    if a.progressive and not 0 <= small_epochs <= epochs:
        raise ValueError(f"--progressive-epochs must be between 0 and the {epochs} phase-1 epochs")
    if (a.calibration_images is not None or a.colour_calibration_images is not None) and a.calibrate is None:
        raise ValueError("--calibration-images sets images aside for --calibrate; give --calibrate GAP too")
    feat = a.feature_weight if a.feature_weight is not None else FEATURE_WEIGHT   # CIFAR-10 and photos: README
    guided = a.recipe == 'semantic' and bool(a.class_weight)
    if preset: print(preset + " (each flag overrides its part)")
    set_seed(a.seed)
    dls, held, colour_dls = _dls_for(a), None, None
    if a.calibration_images is not None:
        from .data import hold_out
        dls, held = hold_out(dls, a.calibration_images, a.seed)
        print(f"train: {a.calibration_images} training images set aside for --calibrate (never trained on)")
    if a.colour_calibration_images is not None:
        from .data import hold_out
        n = calibration_images(len(dls.train_ds)) if a.colour_calibration_images == 'share' else \
            a.colour_calibration_images
        colour_dls, held = hold_out(dls, n, a.seed)
        print(f"train: {n} training images kept from the colour phase for --calibrate (phase 1 trains on all)")
    size = tuple(dls.one_batch()[0].shape[-2:])                   # one batch read, for the U-Net and the guide
    learn = colour_learner(dls, arch=a.arch, pretrained=pretrained, weights=a.encoder_weights, img_size=size,
                           metrics=colour_metrics(), class_guidance=n_classes(own, size) if guided else None)
    if a.init:
        init = Path(a.init).with_suffix('.pth')
        if not init.is_file():
            raise FileNotFoundError(f"--init {init} not found (a model saved by train, e.g. *_unet.pth)")
        try: learn.load(init.absolute().with_suffix(''), with_opt=False)
        except RuntimeError as e:
            if '.head.' not in str(e) and '.fuse.' not in str(e): raise
            raise ValueError(f"--init {init} was trained {'without' if guided else 'with'} a class guide and this "
                             f"U-Net {'has one' if guided else 'has none'}: give the --class-weight it was trained "
                             f"with{' (0: none)' if guided else ''}") from None
        print(f"train: starting from the weights in {init}")
    if a.bf16: learn.to_bf16()
    learn.path = out.parent.absolute(); learn.model_dir = '.'
    print(f"train: {len(dls.train_ds)} training / {len(dls.valid_ds)} validation images, "
          f"{'batched from memory (CachedDL)' if isinstance(dls.train, CachedDL) else 'decoded per item'}, "
          f"{'bf16 mixed precision' if a.bf16 else 'fp32'}, recipe {a.recipe}")
    after_l1 = lambda l: l.save(out.name + '_unet')
    phase1_cbs = []
    if a.progressive:
        small = _dls_for(argparse.Namespace(**{**vars(a), 'size': a.progressive}))
        if a.calibration_images is not None:                               # the same images aside from phase 1
            small = hold_out(small, a.calibration_images, a.seed)[0]
        phase1_cbs = [ProgressiveResizing(small.train, small_epochs)]
        print(f"train: progressive resizing, the first {small_epochs} of {epochs} phase-1 epochs at {a.progressive} px")
    if a.recipe == 'seed':
        train_l1_then_gan(learn, epochs, a.gan_epochs, a.lr, a.gan_lr, a.lambda_l1, after_l1=after_l1,
                          phase1_cbs=phase1_cbs)
        calibrated = _predict_settings(learn, a, held)
        learn.save(out.name)
        learn.remove_cb(learn.gan_colourizer)
        what = 'with D, for resuming'
    else:
        terms = (('SemanticLoss', a.semantic_weight), ('FeatureLoss', feat), ('ClassGuidanceLoss', a.class_weight))
        for term, w in terms:
            if w: print(f"train: {term}({w:g}) through the encoder's pretrained network, in both phases" if own is not None
                        else f"train: the encoder has no pretrained network, so {term} is left out")
        cf, psnr = a.colourfulness_weight, a.psnr_weight
        print(f"train: colour phase with ColourfulnessLoss({cf:g}) + PSNRLoss({psnr:g})")
        train_semantic_colour(learn, epochs, a.colour_epochs, a.lr, a.colour_lr, classifier=own,
                              semantic_weight=a.semantic_weight, feature_net=own, feature_weight=feat,
                              class_net=own, class_weight=a.class_weight, colourfulness_weight=cf,
                              psnr_weight=psnr, after_l1=after_l1, phase1_cbs=phase1_cbs, colour_dls=colour_dls)
        calibrated = _predict_settings(learn, a, held)
        learn.save(out.name)
        what = 'for resuming'
    learn.to_fp32()                                 # the exported generator is a plain fp32 model
    learn.export(out.with_suffix('.pkl').name)
    print(f"saved {out}_unet.pth (after phase 1), {out}.pth ({what}) and {out.with_suffix('.pkl')} (for colourize)")
    return 0 if calibrated else EXIT_SOME_FAILED


def _predict_settings(learn, a, held=None):
    """--flip-average and --calibrate, after the last fit: they go into the saved and exported model. The gain is
    fitted on `held` (the --calibration-images set aside), else on the validation images."""
    from . import use_flip_average, calibrate_colourfulness
    if a.flip_average:
        use_flip_average(learn)
        print("train: predictions average each image with its mirror image (--flip-average)")
    if a.calibrate is not None:
        if held is None and a.dataset != 'folder':
            print(f"train: note: --calibrate fits on the validation images, which for --dataset {a.dataset} are its "
                  f"test split; scores on them are then no longer held out (--calibration-images N sets training "
                  f"images aside instead)", file=sys.stderr)
        try: g = calibrate_colourfulness(learn, held, gap=a.calibrate)
        except ValueError as e:                     # never lose the training run to it: save uncalibrated
            print(f"train: --calibrate failed, the model is saved uncalibrated: {e}", file=sys.stderr)
            return False
        print(f"train: chroma gain {g:.3f} makes the {'set-aside' if held is not None else 'validation'} images' "
              f"colourfulness the truth's"
              f"{f' minus {a.calibrate:g}' if a.calibrate else ''} (--calibrate)")
    return True


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
    from .inference import load_colourizer, colourize_files, folder_jobs
    missing = [s for s in a.inputs if not Path(s).exists()]
    if missing: raise FileNotFoundError(f"input(s) not found: {', '.join(missing)}")
    out = Path(a.output)
    if out.exists() and not out.is_dir(): raise NotADirectoryError(f"the output {out} is an existing file, not a folder")
    device = _device(a.device)
    jobs, not_images = [], []
    for src in map(Path, a.inputs):
        jobs += folder_jobs(src, out / src.resolve().name if src.is_dir() else out, a.format, not_images)
    from .inference import plan_outputs
    plan_outputs(jobs, a.overwrite)                 # every clash and unwritable folder, before the model loads
    learn = load_colourizer(a.model, cpu=device.type == 'cpu')
    learn.model.to(device)
    if a.flip_average:
        from .models import use_flip_average
        use_flip_average(learn)
    res = colourize_files(learn, jobs, a.render_size, a.bs, overwrite=a.overwrite)
    print(f"colourised {len(res['written'])} image(s) into {out}; {len(res['skipped'])} existed already "
          f"(--overwrite to redo), {len(res['failed'])} could not be read")
    if not_images:
        print(f"left alone {len(not_images)} file(s) that are not images: " +
              ', '.join(map(str, not_images[:5])) + (', ...' if len(not_images) > 5 else ''))
    return EXIT_SOME_FAILED if res['failed'] else 0


def cmd_export(a):
    from .inference import export_onnx
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


def build_parser():
    p = _Parser(prog='colourgan', description=__doc__)
    sub = p.add_subparsers(dest='cmd', required=True, parser_class=_Parser)
    d = sub.add_parser('demo', help='train briefly on the embedded sample photos and write a results picture')
    d.add_argument('--epochs', type=int, default=4); d.add_argument('--gan-epochs', type=int, default=2)
    d.add_argument('--size', type=int, default=64); d.add_argument('--n', type=int, default=1500)
    d.add_argument('--bs', type=int, default=32); d.add_argument('--lr', type=float, default=2e-3)
    d.add_argument('--gan-lr', type=float, default=2e-4); d.add_argument('--lambda-l1', type=float, default=100.)
    d.add_argument('--seed', type=int, default=42)
    d.add_argument('--out', default='images/demo_results.png'); d.add_argument('--model', default='models/demo.pkl')
    d.set_defaults(func=cmd_demo)

    t = sub.add_parser('train', help='train a colourizer on a data set (--recipe semantic or seed)')
    t.add_argument('--dataset', choices=['cifar10', 'stl10', 'imagenette', 'folder'], default='cifar10')
    t.add_argument('--data', help='data root (cifar10/imagenette: the folder holding cifar10/ or imagenette2-160/; '
                                  'stl10: the folder with stl10_binary/; folder: a folder of images)')
    t.add_argument('--valid', help='--dataset folder: a separate folder of validation images')
    t.add_argument('--arch', default='resnet20_cifar'); t.add_argument('--encoder-weights')
    t.add_argument('--no-pretrained', action='store_true', help='random encoder (no weights download)')
    t.add_argument('--recipe', choices=['semantic', 'seed'], default='semantic',
                   help="semantic (default): L1 + EMA, then + colourfulness and PSNR losses (README, Results; on "
                        "cifar10 with step 19's settings: CIFAR10_RECIPE); seed: the reference recipe, L1 then GAN "
                        "(lambda 100)")
    t.add_argument('--epochs', type=int, help='phase-1 epochs (default: semantic 8 on cifar10, 4 elsewhere; seed 20)')
    t.add_argument('--lr', type=float, default=1e-3)
    t.add_argument('--colour-epochs', type=int, default=1, help='semantic: epochs with the colourfulness loss')
    t.add_argument('--colour-lr', type=float, default=3e-4)
    t.add_argument('--semantic-weight', type=float, default=0., help="semantic: weight of SemanticLoss through the "
                   "encoder's own classifier (default 0, off: no gain measured on CIFAR-10, adversarial through "
                   "ImageNet's 1000 classes; 0.05 was the CIFAR ResNet-20's)")
    t.add_argument('--feature-weight', type=float, help="semantic: weight of FeatureLoss (perceptual) through the "
                   "encoder's own pretrained network, in both phases (default: FEATURE_WEIGHT, 0.3: on CIFAR-10 and "
                   "on photos it raised fidelity and cut blotches, two seeds each; 0 turns it off)")
    t.add_argument('--class-weight', type=float, help="semantic: W > 0 adds a class guide to the U-Net and "
                   "W * ClassGuidanceLoss through the encoder's own classifier, in both phases (default: 0.003 on "
                   "cifar10 given a pretrained classifier, README, Case 1, step 19; 0, off, elsewhere)")
    t.add_argument('--init', metavar='MODEL', help="start from a model's weights saved by train (e.g. "
                   "models/colouriser_unet.pth; with --epochs 0, only the colour phase runs)")
    t.add_argument('--colourfulness-weight', type=float, help='semantic: weight of ColourfulnessLoss in the colour '
                   'phase (default: 3 for cifar10, with the calibrated gain; 0.5 for photos, where 1.5 paints a sepia '
                   'cast: README, Case 2)')
    t.add_argument('--psnr-weight', type=float, help='semantic: weight of PSNRLoss in the colour phase (default: 2 '
                                                      'for cifar10, PSNR_WEIGHT 0.2 elsewhere)')
    t.add_argument('--gan-epochs', type=int, default=20, help='seed: GAN epochs')
    t.add_argument('--gan-lr', type=float, default=2e-4); t.add_argument('--lambda-l1', type=float, default=100.)
    t.add_argument('--size', type=int); t.add_argument('--bs', type=int); t.add_argument('--n-train', type=int)
    t.add_argument('--progressive', type=int, metavar='SIZE', help='progressive resizing: the first phase-1 epochs '
                   'train on the same images at SIZE px, the rest at --size (ProgressiveResizing)')
    t.add_argument('--progressive-epochs', type=int, help='--progressive: how many (default: half of phase 1)')
    t.add_argument('--n-valid', type=int, help='cifar10/stl10/imagenette: a seeded subset of the validation images')
    t.add_argument('--flip-average', action=argparse.BooleanOptionalAction, help='predict the mean of each image and '
                   'its mirror image (test-time augmentation, twice the inference cost; saved with the model; '
                   'default: on for the semantic recipe on cifar10)')
    t.add_argument('--calibrate', type=float, metavar='GAP', help="after training, fit the chroma gain that makes "
                   "the validation images' colourfulness the truth's minus GAP (0: as colourful as the truth; saved "
                   "with the model). Calibrate on images held out from training, never on a test set: see "
                   "--calibration-images and --colour-calibration-images (default: 1 for the semantic recipe on "
                   "cifar10, on images kept from its colour phase; none elsewhere)")
    t.add_argument('--no-calibrate', action='store_true', help="no chroma gain (the semantic recipe on cifar10 "
                   "calibrates by default: --calibrate 0.5 on 4 %% of the training images kept from the colour phase)")
    t.add_argument('--calibration-images', type=int, metavar='N', help="with --calibrate: set a seeded N of the "
                   "training images aside, train on the others and fit the gain on these (default: on the "
                   "validation images, which for stl10/imagenette are their test split)")
    t.add_argument('--colour-calibration-images', type=int, metavar='N', help="semantic, with --calibrate: phase 1 "
                   "trains on every training image, the colour phase on all but a seeded N, and the gain is fitted "
                   "on those N (README, Case 1, step 19; default on cifar10: 4 %% of the training images)")
    t.add_argument('--seed', type=int, default=42)
    t.add_argument('--out', default='models/colouriser', help='path stem for the saved model files')
    t.add_argument('--overwrite', action='store_true')
    t.add_argument('--bf16', action='store_true', help='bf16 mixed precision: on a GPU, or a CPU with bf16 units '
                   '(AVX512-BF16 or AMX in /proc/cpuinfo), about 1.5-2x faster (bench/RESULTS.md); on a CPU without '
                   'them bf16 is emulated, 10-25x SLOWER than fp32, and train warns')
    t.add_argument('--cache', action='store_true', help='folder/imagenette: decode and Lab-convert every image once and '
                   'batch from memory (centre crops at --size; cifar10 and stl10 always do)')
    t.set_defaults(func=cmd_train)

    c = sub.add_parser('colourize', help='colourise image files or folders with an exported model')
    c.add_argument('inputs', nargs='+', metavar='INPUT', help='image files or folders (searched recursively)')
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
                   '(twice the time; measured on photos: +0.05-0.07 dB, a tenth fewer blotch pixels; README Case 2)')
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

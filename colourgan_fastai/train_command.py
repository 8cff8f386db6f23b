"""`colourgan train`: the data set found from --data, the named recipe with the options given, the files written."""
import dataclasses
import sys
from pathlib import Path

from .cli import EXIT_SOME_FAILED

__all__ = ['cmd_train']


def _recipe_for(a, kind):
    "The named recipe (by default the data set's: cifar10 on CIFAR-10, photos elsewhere) with the options given."
    from .recipe import Recipe
    if a.no_calibrate and a.calibrate is not None: raise ValueError("--calibrate GAP and --no-calibrate contradict each other")
    r = Recipe.named(a.recipe or ('cifar10' if kind == 'cifar10' else 'photos'),
                     **({} if a.hints is None else {'hints': a.hints}))      # the photo recipe's gain goes with hints
    r = r.replace(**{k: getattr(a, k) for k in RECIPE_OPTIONS})
    return dataclasses.replace(r, calibrate=None) if a.no_calibrate else r        # None: no gain


RECIPE_OPTIONS = ('epochs', 'lr', 'colour_epochs', 'colour_lr', 'gan_epochs', 'gan_lr', 'lambda_l1', 'feature_weight',
                  'class_weight', 'colourfulness_weight', 'psnr_weight', 'flip_average', 'calibrate', 'calibration_share',
                  'calibrate_whole', 'hints')


def _describe(r):
    "One line: what the recipe will do."
    phase2 = (f"{r.gan_epochs} GAN epochs (lambda {r.lambda_l1:g})" if r.kind == 'gan' else
              f"{r.colour_epochs} colour epoch(s) (ColourfulnessLoss {r.colourfulness_weight:g}, PSNRLoss {r.psnr_weight:g})")
    extras = ([f"FeatureLoss {r.feature_weight:g}"] if r.feature_weight and r.kind == 'colour' else []) + \
             ([f"class guidance {r.class_weight:g}"] if r.class_weight and r.kind == 'colour' else []) + \
             (['flip averaging'] if r.flip_average else []) + (['colour hints'] if r.hints else []) + \
             ([f"a chroma gain aimed at the truth's colourfulness minus {r.calibrate:g}"
               + (" on whole photos" if r.calibrate_whole else "")] if r.calibrate is not None else [])
    return f"train: recipe {r.name}: {r.epochs} L1 epochs, then {phase2}" + (f"; {', '.join(extras)}" if extras else '')


def cmd_train(a):
    from fastai.torch_core import set_seed
    from . import colour_learner, colour_metrics, encoder_classifier, ProgressiveResizing
    from .cache import CachedDL
    from .data import dls_from_folder, find_dataset
    from .recipe import train, CalibrationError
    out = Path(a.out)
    found = find_dataset(a.data)                    # (kind, root): the folder is looked at once
    kind = found[0]
    recipe = _recipe_for(a, kind)
    ends = ('_unet.pth', '.pth', '.pkl') + (('.gan_colourizer.pth',) if recipe.kind == 'gan' else ())
    writes = [out.parent / (out.name + end) for end in ends]
    there = [str(f) for f in writes if f.exists()]
    if there and not a.overwrite: raise FileExistsError(f"{', '.join(there)} exist(s); pass --overwrite to replace")
    if a.init and Path(a.init).with_suffix('.pth').absolute() in [f.absolute() for f in writes]:
        raise ValueError(f"--init {a.init} is a file this run writes; give --out another name")
    if a.progressive and not 0 <= (a.progressive_epochs or 0) <= recipe.epochs:
        raise ValueError(f"--progressive-epochs must be between 0 and the {recipe.epochs} phase-1 epochs")
    pretrained = not a.no_pretrained
    wants_net = recipe.kind == 'colour' and (recipe.feature_weight or recipe.class_weight)
    net = encoder_classifier(a.arch, pretrained, a.encoder_weights) if wants_net else None
    if wants_net and net is None: print("train: the encoder has no pretrained network, so the recipe's FeatureLoss and "
                                       "class guidance are left out")
    print(_describe(recipe) + " (each option overrides its part)")
    set_seed(a.seed)
    dls, kind = dls_from_folder(a.data, a.size, a.bs, a.n_train, a.n_valid, a.seed, a.cache, found)
    size = tuple(dls.one_batch()[0].shape[-2:])
    learn = colour_learner(dls, arch=a.arch, pretrained=pretrained, weights=a.encoder_weights, img_size=size,
                           metrics=colour_metrics(), class_guidance=recipe.guide_classes(net, size), hints=recipe.hints,
                           path=out.parent.absolute(), model_dir='.')
    if a.init: _init_from(learn, Path(a.init).with_suffix('.pth'))
    if a.bf16: learn.to_bf16()
    print(f"train: {kind} at {size[0]} px, {len(dls.train_ds)} training / {len(dls.valid_ds)} validation images, "
          f"{'batched from memory (CachedDL)' if isinstance(dls.train, CachedDL) else 'decoded per item'}, "
          f"{'bf16 mixed precision' if a.bf16 else 'fp32'}")
    phase1_cbs = []
    if a.progressive:
        small = dls_from_folder(a.data, a.progressive, a.bs, a.n_train, a.n_valid, a.seed, a.cache, found)[0]
        n_small = recipe.epochs // 2 if a.progressive_epochs is None else a.progressive_epochs
        phase1_cbs = [ProgressiveResizing(small.train, n_small)]
        print(f"train: progressive resizing, the first {n_small} of {recipe.epochs} L1 epochs at {a.progressive} px")
    calibrated = True
    try: train(learn, recipe, net, after_l1=lambda l: l.save(out.name + '_unet'), phase1_cbs=phase1_cbs, seed=a.seed)
    except CalibrationError as e:                   # never lose the training run to it: save uncalibrated
        print(f"train: the chroma gain could not be fitted, the model is saved uncalibrated: {e}", file=sys.stderr)
        calibrated = False
    learn.save(out.name)                            # with the seed recipe, D and its optimiser go beside it
    if recipe.kind == 'gan': learn.remove_cb(learn.gan_colourizer)
    learn.to_fp32()                                 # the exported generator is a plain fp32 model
    learn.export(out.with_suffix('.pkl').name)
    print(f"saved {', '.join(str(f) for f in writes)}: after the L1 phase, for resuming with learn.load, and for "
          f"colourize (the .pkl)")
    return 0 if calibrated else EXIT_SOME_FAILED


def _init_from(learn, init):
    "Start from the weights of a model `train` saved, with a clear error where its class guide does not match."
    if not init.is_file(): raise FileNotFoundError(f"--init {init} not found (a model saved by train, e.g. *_unet.pth)")
    guided, hinted = learn.model.guide is not None, learn.model.takes_hints
    try: learn.load(init.absolute().with_suffix(''), with_opt=False)
    except RuntimeError as e:
        if 'hint_conv' in str(e) and not hinted:
            raise ValueError(f"--init {init} was trained with hints: pass --hints") from None
        if 'hint_conv' in str(e) and 'Unexpected' not in str(e):          # a hint-free model learns hints from here
            learn.load(init.absolute().with_suffix(''), with_opt=False, strict=False)
            print(f"train: starting from the weights in {init}; its U-Net took no hints, the hint input starts at zero")
            return
        if '.head.' not in str(e) and '.fuse.' not in str(e): raise
        raise ValueError(f"--init {init} was trained {'without' if guided else 'with'} a class guide and this U-Net "
                         f"{'has one' if guided else 'has none'}: give the --class-weight it was trained with"
                         f"{' (0: none)' if guided else ''}") from None
    print(f"train: starting from the weights in {init}")

import subprocess
from pathlib import Path
import sys

import numpy as np
from PIL import Image

from colourgan_fastai.cli import main


def test_demo_writes_the_picture_metrics_and_model(tmp_path, capsys):
    out, model = tmp_path / 'demo.png', tmp_path / 'demo.pkl'
    rc = main(['demo', '--epochs', '1', '--gan-epochs', '1', '--size', '32', '--n', '160', '--bs', '16',
               '--out', str(out), '--model', str(model)])
    assert rc == 0
    text = capsys.readouterr().out
    assert 'demo metrics (held-out): model  l1' in text and 'grey   l1' in text and 'psnr' in text
    fig = Image.open(out)
    assert fig.size[1] == 512 + 32                # whole held-out strips at full resolution (astronaut: 512 px high)
    assert fig.size[0] > 6 * 3 * 60 and model.stat().st_size > 100_000


def _noise_folder(path, n, size=40, seed=0):
    path.mkdir(parents=True)
    rng = np.random.RandomState(seed)
    for i in range(n): Image.fromarray(rng.randint(0, 255, (size, size, 3), dtype=np.uint8)).save(path / f'{i}.png')
    return path


def test_train_on_a_folder_uses_the_photo_recipe_and_saves_files_plain_fastai_reads(tmp_path, capsys):
    import torch
    from fastai.learner import load_learner, load_model
    from fastai.callback.fp16 import MixedPrecision
    data = _noise_folder(tmp_path / 'imgs', 12)
    stem = tmp_path / 'out' / 'm'
    base = ['train', '--data', str(data), '--arch', 'resnet20_cifar', '--size', '32', '--bs', '4', '--out', str(stem),
            '--epochs', '1', '--no-calibrate']                  # noise has more colour than any gain reaches
    assert main(base + ['--no-pretrained']) == 0
    for f in ('m_unet.pth', 'm.pth', 'm.pkl'): assert (tmp_path / 'out' / f).exists(), f
    text = capsys.readouterr().out
    assert 'recipe photos: 1 L1 epochs, then 1 colour epoch(s) (ColourfulnessLoss 0.5, PSNRLoss 0.2)' in text
    assert 'colour hints' in text and 'psnr_10hints' in text                  # the photo recipe learns hints
    assert 'folder at 32 px, 10 training / 2 validation images, decoded per item, fp32' in text
    assert 'no pretrained network, so the recipe\'s FeatureLoss and class guidance are left out' in text
    assert main(base + ['--no-pretrained']) != 0                                  # never overwrites without --overwrite
    from colourgan_fastai.encoders import CifarResNet
    torch.save({'state_dict': {'module.' + k: v for k, v in CifarResNet().state_dict().items()}}, tmp_path / 'r20.th')
    assert main(base + ['--encoder-weights', str(tmp_path / 'r20.th'), '--overwrite', '--colourfulness-weight', '2']) == 0
    text = capsys.readouterr().out
    assert 'ColourfulnessLoss 2,' in text and 'FeatureLoss 0.3' in text and 'left out' not in text
    args = base + ['--no-pretrained', '--recipe', 'seed', '--gan-epochs', '1', '--overwrite', '--bf16', '--cache']
    assert main(args) == 0
    assert 'recipe seed: 1 L1 epochs, then 1 GAN epochs (lambda 100)' in (text := capsys.readouterr().out)
    assert 'batched from memory (CachedDL), bf16 mixed precision' in text
    assert (tmp_path / 'out' / 'm.gan_colourizer.pth').is_file()                  # the seed's D, for resuming
    assert set(torch.load(tmp_path / 'out' / 'm.pth', weights_only=False)) == {'model', 'opt'}   # fastai's own file
    learn = load_learner(tmp_path / 'out' / 'm.pkl')
    load_model(tmp_path / 'out' / 'm.pth', learn.model, None, with_opt=False)
    assert not any(isinstance(cb, MixedPrecision) for cb in learn.cbs)      # exported as a plain fp32 model


def test_the_data_set_is_found_from_the_folder_and_anything_else_is_a_clear_error(tmp_path, capsys):
    from colourgan_fastai.data import find_dataset
    for layout, kind, root in ((['cifar10/train/cat', 'cifar10/test/cat'], 'cifar10', '.'),
                               (['imagenette2-160/train/n1', 'imagenette2-160/val/n1'], 'imagenette', '.')):
        d = tmp_path / kind
        for sub in layout: (d / sub).mkdir(parents=True)
        assert find_dataset(d) == (kind, d)
        assert find_dataset(d / layout[0].split('/')[0]) == (kind, d)          # the data set's own folder too
    (tmp_path / 'stl' / 'stl10_binary').mkdir(parents=True)
    (tmp_path / 'stl' / 'stl10_binary' / 'train_X.bin').write_bytes(bytes(3 * 96 * 96))
    assert find_dataset(tmp_path / 'stl') == ('stl10', tmp_path / 'stl')
    photos = _noise_folder(tmp_path / 'photos' / 'a', 3)
    assert find_dataset(tmp_path / 'photos') == ('folder', tmp_path / 'photos')
    assert find_dataset('cifar10')[0] == 'cifar10' and find_dataset('cifar10')[1] is None    # downloads for users
    out = ['--no-pretrained', '--out', str(tmp_path / 'm')]
    (tmp_path / 'empty').mkdir(); (tmp_path / 'notes.txt').write_text('x')
    for data, said in ((tmp_path / 'nope', 'does not exist'), (tmp_path / 'notes.txt', 'is a file'),
                       (tmp_path / 'empty', 'no image files found')):
        assert main(['train', '--data', str(data)] + out) == 2
        assert said in capsys.readouterr().err
    assert main(['train'] + out) == 2 and '--data' in capsys.readouterr().err
    assert photos.is_dir() and not list(tmp_path.glob('m*'))                      # nothing written


def test_train_help_keeps_a_short_main_group_and_states_the_codes_own_defaults():
    import re
    from colourgan_fastai.cli import build_parser
    from colourgan_fastai.recipe import Recipe
    p = build_parser()
    train = p._subparsers._group_actions[0].choices['train']
    main_group = next(g for g in train._action_groups if g.title == 'options')
    assert len([a for a in main_group._group_actions if a.dest != 'help']) <= 15
    checked = 0
    for act in train._actions:
        text = act.help % {'default': act.default} if act.help else ''
        if act.dest in Recipe.__dataclass_fields__:
            assert act.default is None, act.dest                               # the CLI keeps no recipe defaults
            said = dict(re.findall(r'(cifar10|photos|seed) ([^,)]+)', text.split('recipe default:')[1]))
            for name, v in said.items():
                want = getattr(Recipe.named(name), act.dest)
                assert v == ('off' if want is False or want is None else 'on' if want is True else f'{want:g}'), (act.dest, name)
            checked += 1
        elif (m := re.search(r'\(default: ([^)]*)\)', text)) and act.default is not None:
            assert m.group(1) == str(act.default), act.dest
            checked += 1
    assert checked >= 15
    r = subprocess.run([sys.executable, '-m', 'colourgan_fastai.cli', 'colourise', '--help'], capture_output=True,
                       text=True)
    assert r.returncode == 0 and '--render-size' in r.stdout                     # both spellings name the command


def test_train_init_continues_from_a_saved_model_and_never_overwrites_it(tmp_path, capsys):
    import torch
    data = tmp_path / 'imgs'; data.mkdir()
    rng = np.random.RandomState(1)
    for i in range(8): Image.fromarray(rng.randint(0, 255, (36, 36, 3), dtype=np.uint8)).save(data / f'{i}.png')
    base = ['train', '--data', str(data), '--arch', 'resnet20_cifar', '--no-pretrained',
            '--size', '32', '--bs', '4', '--colour-epochs', '0', '--no-calibrate']
    assert main(base + ['--epochs', '1', '--out', str(tmp_path / 'a')]) == 0
    a_unet = tmp_path / 'a_unet.pth'
    before = a_unet.read_bytes()
    assert main(base + ['--epochs', '0', '--init', str(a_unet), '--out', str(tmp_path / 'b')]) == 0
    assert f'starting from the weights in {a_unet}' in capsys.readouterr().out
    wa, wb = (torch.load(tmp_path / f, weights_only=False) for f in ('a_unet.pth', 'b.pth'))
    wa, wb = (w['model'] for w in (wa, wb))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)   # no training: the same weights
    # the file it starts from is never a file it writes, even with --overwrite; an existing phase-1 file is kept
    assert main(base + ['--epochs', '1', '--init', str(a_unet), '--out', str(tmp_path / 'a'), '--overwrite']) == 2
    assert 'is a file this run writes' in capsys.readouterr().err
    (tmp_path / 'c_unet.pth').write_bytes(b'keep')
    assert main(base + ['--epochs', '1', '--out', str(tmp_path / 'c')]) == 2
    assert 'c_unet.pth exist(s)' in capsys.readouterr().err and (tmp_path / 'c_unet.pth').read_bytes() == b'keep'
    assert main(base + ['--epochs', '0', '--init', str(tmp_path / 'nope.pth'), '--out', str(tmp_path / 'd')]) == 2
    assert 'not found' in capsys.readouterr().err and a_unet.read_bytes() == before


def test_train_flip_average_is_saved_and_a_failed_calibration_loses_nothing(tmp_path, capsys):
    import torch
    data = _noise_folder(tmp_path / 'imgs', 8, 36, 2)
    stem = tmp_path / 'm'
    rc = main(['train', '--data', str(data), '--arch', 'resnet20_cifar', '--no-pretrained',
               '--size', '32', '--bs', '4', '--epochs', '1', '--colour-epochs', '0', '--out', str(stem),
               '--flip-average', '--calibrate', '-1000'])      # 1000 over the truth's colourfulness: out of reach
    out, err = capsys.readouterr()
    assert rc == 1 and 'the chroma gain could not be fitted, the model is saved uncalibrated: no chroma gain' in err
    assert 'flip averaging' in out
    from colourgan_fastai import load_colourizer
    G = load_colourizer(stem.with_suffix('.pkl')).model          # saved all the same, flip averaging on
    assert G.flip_average and G.chroma_gain == 1.
    assert torch.load(tmp_path / 'm.pth', weights_only=False)['model']['flip_average']


def test_train_calibrates_on_training_images_it_set_aside(tmp_path, capsys):
    data = tmp_path / 'imgs'; data.mkdir()
    rng = np.random.RandomState(3)                            # smooth colour fields: a reachable colourfulness
    for i in range(12):
        Image.fromarray(rng.randint(0, 255, (3, 3, 3), dtype=np.uint8)).resize((36, 36), Image.BILINEAR).save(
            data / f'{i}.png')
    base = ['train', '--data', str(data), '--arch', 'resnet20_cifar', '--no-pretrained',
            '--size', '32', '--bs', '4', '--epochs', '1', '--colour-epochs', '1']
    stem = tmp_path / 'm'
    assert main(base + ['--out', str(stem), '--calibrate', '40', '--calibration-share', '0.3']) == 0
    out = capsys.readouterr().out
    assert 'train: 3 training images kept from the colour phase to fit the chroma gain on' in out
    assert "makes the set-aside images' colourfulness the truth's minus 40" in out
    from colourgan_fastai import load_colourizer
    assert load_colourizer(stem.with_suffix('.pkl')).model.chroma_gain != 1.   # fitted, saved with the model
    whole = tmp_path / 'w'                                    # fitted on the 36 px photos as colourize renders them
    assert main(base + ['--out', str(whole), '--calibrate', '40', '--calibration-share', '0.3', '--calibrate-whole']) == 0
    out = capsys.readouterr().out
    assert "minus 40 on whole photos" in out and "the truth's minus 40 (whole, at their stored size)" in out
    assert load_colourizer(whole.with_suffix('.pkl')).model.chroma_gain != 1.
    assert main(base + ['--out', str(tmp_path / 'n'), '--calibrate', '0', '--calibration-share', '1.5']) == 2
    assert 'calibration_share must be in (0, 1)' in capsys.readouterr().err
    assert main(base + ['--out', str(tmp_path / 'n'), '--no-calibrate', '--calibrate', '1']) == 2
    assert 'contradict' in capsys.readouterr().err
    assert not list(tmp_path.glob('n*'))                                  # refused before anything was written


def test_cli_errors_are_clear(tmp_path, capsys):
    data = _noise_folder(tmp_path / 'imgs', 4)
    assert main(['train', '--data', str(data), '--no-pretrained', '--epochs', '2',
                 '--progressive', '16', '--progressive-epochs', '3', '--out', str(tmp_path / 'm')]) == 2
    assert '--progressive-epochs must be between 0 and the 2 phase-1 epochs' in capsys.readouterr().err
    r = subprocess.run([sys.executable, '-m', 'colourgan_fastai.cli', '--help'], capture_output=True, text=True)
    assert r.returncode == 0 and 'demo' in r.stdout and 'train' in r.stdout


def test_cifar10_training_from_the_cli_uses_the_cifar10_recipe_and_each_option_overrides_its_part(shared, tmp_path,
                                                                                                       capsys):
    """colourgan train --data <CIFAR-10>: Recipe.cifar10(), FeatureLoss and class guidance through the encoder's
    ResNet-20, the colour phase on all but 4 % of the training images, flip averaging and a chroma gain fitted on
    those 4 %; options switch each part off or change it."""
    from colourgan_fastai import load_colourizer
    base = ['train', '--data', str(shared / 'data'), '--arch', 'resnet20_cifar',
            '--encoder-weights', str(shared / 'weights/resnet20-12fca82f.th'), '--n-train', '50', '--n-valid', '16',
            '--bs', '16', '--epochs', '1', '--colour-epochs', '1']
    assert main(base + ['--out', str(tmp_path / 'c')]) == 0
    text = capsys.readouterr().out
    assert ("recipe cifar10: 1 L1 epochs, then 1 colour epoch(s) (ColourfulnessLoss 3, PSNRLoss 2); FeatureLoss 0.3, "
            "class guidance 0.003, flip averaging, a chroma gain aimed at the truth's colourfulness minus 0.5") in text
    assert 'cifar10 at 32 px, 50 training / 16 validation images' in text
    assert '2 training images kept from the colour phase' in text and 'makes the set-aside images' in text
    G = load_colourizer(tmp_path / 'c.pkl').model
    assert G.guide.n_classes == 10 and G.flip_average and G.chroma_gain != 1          # a guided U-Net, as scored
    plain = ['--class-weight', '0', '--feature-weight', '0', '--no-flip-average', '--no-calibrate',
             '--colourfulness-weight', '1.5', '--psnr-weight', '0.2']
    assert main(base + ['--out', str(tmp_path / 'e')] + plain) == 0
    text = capsys.readouterr().out
    assert 'class guidance' not in text and 'FeatureLoss' not in text and '(ColourfulnessLoss 1.5, PSNRLoss 0.2)' in text
    G = load_colourizer(tmp_path / 'e.pkl').model
    assert G.guide is None and not G.flip_average and G.chroma_gain == 1
    assert main(base + ['--out', str(tmp_path / 'f'), '--init', str(tmp_path / 'e_unet.pth')]) == 2     # no guide
    assert 'trained without a class guide' in capsys.readouterr().err


def test_imagenette_photo_colouriser_from_the_cli_colourizes_held_out_photos_at_full_size(shared, tmp_path, capsys):
    "colourgan train --dataset imagenette (default recipe, ImageNet MobileNetV2), then colourize + the README figure."
    stem = tmp_path / 'photo'
    assert main(['train', '--data', str(shared / 'data/imagenette2-160'), '--arch', 'mobilenet_v2',
                 '--encoder-weights', str(shared / 'weights/mobilenet_v2_imagenet.pth'), '--n-train', '16',
                 '--n-valid', '8', '--size', '32', '--bs', '8', '--epochs', '2', '--colour-epochs', '1',
                 '--progressive', '16', '--out', str(stem)]) == 0
    text = capsys.readouterr().out
    assert 'imagenette at 32 px, 16 training / 8 validation images' in text and 'recipe photos' in text
    assert 'the first 1 of 2 L1 epochs at 16 px' in text
    val = shared / 'data/imagenette2-160/val'
    photo = sorted((val / sorted(p.name for p in val.iterdir())[0]).iterdir())[0]
    assert main(['colourize', str(photo), '-o', str(tmp_path / 'out'), '--model', str(stem) + '.pkl']) == 0
    out = Image.open(tmp_path / 'out' / (photo.stem + '.png'))
    assert out.size == Image.open(photo).size and out.mode == 'RGB'              # the whole photo, full resolution
    import runpy
    fig = runpy.run_path(str(Path(__file__).parents[1] / 'examples/photo_figure.py'), run_name='x')['main'](
        ['--model', str(stem) + '.pkl', '--photos', str(val), '--n', '3', '--per-row', '2',
         '--out', str(tmp_path / 'fig.png')])
    w, h = Image.open(fig).size
    assert h > 2 * 160 and w > 2 * 3 * 160                  # 3 photos, 2 per row, each grey | colourised | original
    few = tmp_path / 'few'; few.mkdir()
    for p in sorted(photo.parent.iterdir())[:3]: (few / p.name).write_bytes(p.read_bytes())
    _, sc = runpy.run_path(str(Path(__file__).parents[1] / 'examples/photo_figure.py'), run_name='x')['main'](
        ['--model', str(stem) + '.pkl', '--photos', str(few), '--n', '2', '--out', str(tmp_path / 'fig2.png'), '--score'])
    g, m = sc['grey'], sc['model']
    assert g['colourfulness'] < 1 and g['spurious_colour'] == 0 and g['delta_colourfulness'] < -5   # grey: no colour
    assert m['colourfulness'] > g['colourfulness'] and 10 < m['psnr'] < 60 and 0 < m['ssim'] <= 1
    assert 'blotch pixels' in capsys.readouterr().out


def test_train_with_hints_writes_a_model_that_takes_them_and_inits_from_a_hint_free_one(tmp_path, capsys):
    from colourgan_fastai import load_colourizer
    data = _noise_folder(tmp_path / 'imgs', 12)
    base = ['train', '--data', str(data), '--arch', 'resnet20_cifar', '--size', '32', '--bs', '4', '--epochs', '1',
            '--colour-epochs', '0', '--no-pretrained']
    assert main(base + ['--out', str(tmp_path / 'plain'), '--no-hints']) == 0
    out = capsys.readouterr().out
    assert 'colour hints' not in out and 'chroma gain' not in out          # the hint-free photo recipe: no gain either
    base += ['--no-calibrate']
    assert main(base + ['--out', str(tmp_path / 'hinted'), '--hints', '--init', str(tmp_path / 'plain_unet.pth')]) == 0
    out = capsys.readouterr().out
    assert 'colour hints' in out and 'psnr_10hints' in out
    assert 'its U-Net took no hints, the hint input starts at zero' in out
    assert load_colourizer(tmp_path / 'hinted.pkl').model.takes_hints
    assert not load_colourizer(tmp_path / 'plain.pkl').model.takes_hints
    assert main(base + ['--out', str(tmp_path / 'again'), '--no-hints', '--init', str(tmp_path / 'hinted.pth')]) != 0
    assert 'was trained with hints: pass --hints' in capsys.readouterr().err

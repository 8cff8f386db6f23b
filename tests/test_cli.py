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


def test_train_on_a_folder_saves_all_three_files(tmp_path, capsys):
    data = tmp_path / 'imgs'; data.mkdir()
    rng = np.random.RandomState(0)
    for i in range(12): Image.fromarray(rng.randint(0, 255, (40, 40, 3), dtype=np.uint8)).save(data / f'{i}.png')
    stem = tmp_path / 'out' / 'm'
    base = ['train', '--dataset', 'folder', '--data', str(data), '--arch', 'resnet20_cifar', '--size', '32',
            '--bs', '4', '--out', str(stem), '--epochs', '1']
    assert main(base + ['--no-pretrained', '--colour-epochs', '1']) == 0          # the default recipe: semantic
    for f in ('m_unet.pth', 'm.pth', 'm.pkl'): assert (tmp_path / 'out' / f).exists(), f
    text = capsys.readouterr().out
    assert 'decoded per item, fp32, recipe semantic' in text and 'SemanticLoss' not in text     # off by default
    assert 'no pretrained network, so FeatureLoss is left out' in text                # nothing to compute it through
    assert 'colour phase with ColourfulnessLoss(0.5) + PSNRLoss(0.2)' in text          # the photo default
    assert main(base + ['--no-pretrained']) != 0                                  # never overwrites without --overwrite
    import torch
    from colourgan_fastai.encoders import CifarResNet
    torch.save({'state_dict': {'module.' + k: v for k, v in CifarResNet().state_dict().items()}}, tmp_path / 'r20.th')
    assert main(base + ['--encoder-weights', str(tmp_path / 'r20.th'), '--overwrite', '--colour-epochs', '1',
                        '--colourfulness-weight', '2', '--semantic-weight', '0.05']) == 0
    text = capsys.readouterr().out
    assert 'SemanticLoss(0.05) through' in text and 'left out' not in text          # opt-in, through its classifier
    assert 'FeatureLoss(0.3) through' in text                                         # on photos too, by default
    assert 'ColourfulnessLoss(2)' in text
    args = base + ['--no-pretrained', '--recipe', 'seed', '--gan-epochs', '1', '--overwrite', '--bf16', '--cache']
    assert main(args) == 0
    assert 'batched from memory (CachedDL), bf16 mixed precision, recipe seed' in capsys.readouterr().out
    saved = torch.load(tmp_path / 'out' / 'm.pth', weights_only=False)
    assert 'gan_colourizer' in saved['callbacks']                                 # the seed's D, for resuming
    from fastai.learner import load_learner
    from fastai.callback.fp16 import MixedPrecision
    learn = load_learner(tmp_path / 'out' / 'm.pkl')
    assert not any(isinstance(cb, MixedPrecision) for cb in learn.cbs)      # exported as a plain fp32 model


def test_train_init_continues_from_a_saved_model_and_never_overwrites_it(tmp_path, capsys):
    import torch
    data = tmp_path / 'imgs'; data.mkdir()
    rng = np.random.RandomState(1)
    for i in range(8): Image.fromarray(rng.randint(0, 255, (36, 36, 3), dtype=np.uint8)).save(data / f'{i}.png')
    base = ['train', '--dataset', 'folder', '--data', str(data), '--arch', 'resnet20_cifar', '--no-pretrained',
            '--size', '32', '--bs', '4', '--colour-epochs', '0']
    assert main(base + ['--epochs', '1', '--out', str(tmp_path / 'a')]) == 0
    a_unet = tmp_path / 'a_unet.pth'
    before = a_unet.read_bytes()
    assert main(base + ['--epochs', '0', '--init', str(a_unet), '--out', str(tmp_path / 'b')]) == 0
    assert f'starting from the weights in {a_unet}' in capsys.readouterr().out
    wa, wb = (torch.load(tmp_path / f, weights_only=False) for f in ('a_unet.pth', 'b.pth'))
    wa, wb = (w.get('model', w) for w in (wa, wb))
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
    data = tmp_path / 'imgs'; data.mkdir()
    rng = np.random.RandomState(2)
    for i in range(8): Image.fromarray(rng.randint(0, 255, (36, 36, 3), dtype=np.uint8)).save(data / f'{i}.png')
    stem = tmp_path / 'm'
    rc = main(['train', '--dataset', 'folder', '--data', str(data), '--arch', 'resnet20_cifar', '--no-pretrained',
               '--size', '32', '--bs', '4', '--epochs', '1', '--colour-epochs', '0', '--out', str(stem),
               '--flip-average', '--calibrate', '-1000'])      # 1000 over the truth's colourfulness: out of reach
    out, err = capsys.readouterr()
    assert rc == 1 and '--calibrate failed, the model is saved uncalibrated: no chroma gain' in err
    assert 'predictions average each image with its mirror image (--flip-average)' in out
    from colourgan_fastai import load_colourizer
    G = load_colourizer(stem.with_suffix('.pkl')).model          # saved all the same, flip averaging on
    assert G.flip_average and G.chroma_gain == 1.
    import torch
    assert torch.load(tmp_path / 'm.pth', weights_only=False)['predict']['flip_average'] is True


def test_train_calibrates_on_training_images_it_set_aside(tmp_path, capsys):
    data = tmp_path / 'imgs'; data.mkdir()
    rng = np.random.RandomState(3)                            # smooth colour fields: a reachable colourfulness
    for i in range(12):
        Image.fromarray(rng.randint(0, 255, (3, 3, 3), dtype=np.uint8)).resize((36, 36), Image.BILINEAR).save(
            data / f'{i}.png')
    base = ['train', '--dataset', 'folder', '--data', str(data), '--arch', 'resnet20_cifar', '--no-pretrained',
            '--size', '32', '--bs', '4', '--epochs', '1', '--colour-epochs', '0']
    stem = tmp_path / 'm'
    assert main(base + ['--out', str(stem), '--calibrate', '0', '--calibration-images', '3']) == 0
    out = capsys.readouterr().out
    assert 'train: 3 training images set aside for --calibrate (never trained on)' in out
    assert 'train: 7 training / 2 validation images' in out               # 12 = 10 train + 2 valid; 3 of 10 aside
    assert "makes the set-aside images' colourfulness the truth's (--calibrate)" in out
    from colourgan_fastai import load_colourizer
    assert load_colourizer(stem.with_suffix('.pkl')).model.chroma_gain != 1.   # fitted, saved with the model
    assert main(base + ['--out', str(tmp_path / 'n'), '--calibration-images', '3']) == 2
    assert '--calibration-images sets images aside for --calibrate' in capsys.readouterr().err
    assert main(base + ['--out', str(tmp_path / 'n'), '--calibrate', '0', '--calibration-images', '10']) == 2
    assert 'cannot set 10 of the 10 training images aside' in capsys.readouterr().err
    assert not list(tmp_path.glob('n*'))                                  # refused before anything was written


def test_cli_errors_are_clear(tmp_path, capsys):
    assert main(['train', '--dataset', 'folder', '--data', str(tmp_path / 'nope'), '--no-pretrained',
                 '--out', str(tmp_path / 'm')]) == 2
    assert 'does not exist' in capsys.readouterr().err
    assert main(['train', '--dataset', 'folder', '--data', str(tmp_path), '--no-pretrained', '--epochs', '2',
                 '--progressive', '16', '--progressive-epochs', '3', '--out', str(tmp_path / 'm')]) == 2
    assert '--progressive-epochs must be between 0 and the 2 phase-1 epochs' in capsys.readouterr().err
    r = subprocess.run([sys.executable, '-m', 'colourgan_fastai.cli', '--help'], capture_output=True, text=True)
    assert r.returncode == 0 and 'demo' in r.stdout and 'train' in r.stdout


def test_cifar10_training_from_the_cli_defaults_to_step_19s_recipe_and_each_flag_overrides_its_part(shared, tmp_path,
                                                                                                     capsys):
    """colourgan train --dataset cifar10: FeatureLoss(0.3) and ClassGuidanceLoss(0.003) through the encoder's ResNet-20,
    a colour phase with ColourfulnessLoss 3 + PSNRLoss 2 on all but 4 % of the training images, flip averaging and a
    chroma gain fitted on those 4 % (CIFAR10_RECIPE); flags switch each part off or change it."""
    from colourgan_fastai import load_colourizer
    base = ['train', '--dataset', 'cifar10', '--data', str(shared / 'data'), '--arch', 'resnet20_cifar',
            '--encoder-weights', str(shared / 'weights/resnet20-12fca82f.th'), '--n-train', '50', '--n-valid', '16',
            '--bs', '16', '--epochs', '1', '--colour-epochs', '1']
    assert main(base + ['--out', str(tmp_path / 'c')]) == 0
    text = capsys.readouterr().out
    preset = next(line for line in text.splitlines() if 'the CIFAR-10 recipe (README, Case 1, steps 19-20)' in line)
    assert ("class guidance 0.003, ColourfulnessLoss 3, PSNRLoss 2, flip averaging, a chroma gain fitted to the "
            "truth's colourfulness minus 0.5") in preset and 'phase-1 epochs' not in preset        # --epochs was given
    for said in ("FeatureLoss(0.3) through the encoder's pretrained network",
                 "ClassGuidanceLoss(0.003) through the encoder's pretrained network",
                 'ColourfulnessLoss(3) + PSNRLoss(2)', '2 training images kept from the colour phase',
                 'makes the set-aside images'):
        assert said in text, said
    G = load_colourizer(tmp_path / 'c.pkl').model
    assert G.guide.n_classes == 10 and G.flip_average and G.chroma_gain != 1          # a guided U-Net, as scored
    assert main(base + ['--out', str(tmp_path / 'd'), '--feature-weight', '0']) == 0
    assert 'FeatureLoss' not in capsys.readouterr().out                               # 0 turns it off
    plain = ['--class-weight', '0', '--no-flip-average', '--no-calibrate', '--colourfulness-weight', '1.5',
             '--psnr-weight', '0.2']
    assert main(base + ['--out', str(tmp_path / 'e')] + plain) == 0                  # step 12's recipe
    text = capsys.readouterr().out
    assert 'ClassGuidanceLoss' not in text and 'step 19' not in text and 'ColourfulnessLoss(1.5) + PSNRLoss(0.2)' in text
    G = load_colourizer(tmp_path / 'e.pkl').model
    assert G.guide is None and not G.flip_average and G.chroma_gain == 1
    assert main(base + ['--out', str(tmp_path / 'f'), '--init', str(tmp_path / 'e_unet.pth')]) == 2     # no guide
    assert 'trained without a class guide' in capsys.readouterr().err
    assert main(base + ['--out', str(tmp_path / 'f'), '--no-calibrate', '--calibrate', '1']) == 2
    assert 'contradict' in capsys.readouterr().err
    assert main(base + ['--out', str(tmp_path / 'f'), '--calibration-images', '4',
                        '--colour-calibration-images', '4']) == 2
    assert 'give one' in capsys.readouterr().err
    assert main(base + ['--out', str(tmp_path / 'f'), '--recipe', 'seed', '--colour-calibration-images', '4']) == 2
    assert 'the seed recipe has none' in capsys.readouterr().err
    assert main(['train', '--dataset', 'folder', '--data', str(tmp_path), '--no-pretrained', '--class-weight', '0.1',
                 '--out', str(tmp_path / 'f')]) == 2
    assert '--class-weight needs an encoder with a pretrained classifier' in capsys.readouterr().err


def test_imagenette_photo_colouriser_from_the_cli_colourizes_held_out_photos_at_full_size(shared, tmp_path, capsys):
    "colourgan train --dataset imagenette (default recipe, ImageNet MobileNetV2), then colourize + the README figure."
    stem = tmp_path / 'photo'
    assert main(['train', '--dataset', 'imagenette', '--data', str(shared / 'data'), '--arch', 'mobilenet_v2',
                 '--encoder-weights', str(shared / 'weights/mobilenet_v2_imagenet.pth'), '--n-train', '16',
                 '--n-valid', '8', '--size', '32', '--bs', '8', '--epochs', '2', '--colour-epochs', '1',
                 '--progressive', '16', '--out', str(stem)]) == 0
    text = capsys.readouterr().out
    assert '16 training / 8 validation images' in text and 'recipe semantic' in text and 'SemanticLoss' not in text
    assert 'the first 1 of 2 phase-1 epochs at 16 px' in text
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

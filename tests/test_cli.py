import subprocess
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
    assert Image.open(out).size[0] > 100 and model.stat().st_size > 100_000


def test_train_on_a_folder_saves_all_three_files(tmp_path, capsys):
    data = tmp_path / 'imgs'; data.mkdir()
    rng = np.random.RandomState(0)
    for i in range(12): Image.fromarray(rng.randint(0, 255, (40, 40, 3), dtype=np.uint8)).save(data / f'{i}.png')
    stem = tmp_path / 'out' / 'm'
    args = ['train', '--dataset', 'folder', '--data', str(data), '--arch', 'resnet20_cifar', '--no-pretrained',
            '--epochs', '1', '--gan-epochs', '1', '--size', '32', '--bs', '4', '--out', str(stem)]
    assert main(args) == 0
    for f in ('m_unet.pth', 'm.pth', 'm.pkl'): assert (tmp_path / 'out' / f).exists(), f
    assert 'decoded per item, fp32' in capsys.readouterr().out
    assert main(args) != 0                                   # never overwrites without --overwrite
    assert main(args + ['--overwrite', '--bf16', '--cache']) == 0
    assert 'batched from memory (CachedDL), bf16 mixed precision' in capsys.readouterr().out
    from fastai.learner import load_learner
    from fastai.callback.fp16 import MixedPrecision
    learn = load_learner(tmp_path / 'out' / 'm.pkl')
    assert not any(isinstance(cb, MixedPrecision) for cb in learn.cbs)      # exported as a plain fp32 model


def test_cli_errors_are_clear(tmp_path, capsys):
    assert main(['train', '--dataset', 'folder', '--data', str(tmp_path / 'nope'), '--no-pretrained',
                 '--out', str(tmp_path / 'm')]) == 2
    assert 'does not exist' in capsys.readouterr().err
    r = subprocess.run([sys.executable, '-m', 'colourgan_fastai.cli', '--help'], capture_output=True, text=True)
    assert r.returncode == 0 and 'demo' in r.stdout and 'train' in r.stdout

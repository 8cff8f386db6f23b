"""Smoke test: the CIFAR-10 experiment script runs end to end on a tiny subset and writes its figures."""
import runpy
import sys
from pathlib import Path

from PIL import Image

EXAMPLES = Path(__file__).resolve().parents[1] / 'examples'


def test_cifar10_experiment_end_to_end(shared, tmp_path, monkeypatch):
    sys.path.insert(0, str(EXAMPLES))
    try:
        mod = runpy.run_path(str(EXAMPLES / 'cifar10_same_dataset.py'), run_name='smoke')
        rows = mod['main'](['--data', str(shared / 'data'), '--weights', str(shared / 'weights/resnet20-12fca82f.th'),
                            '--judge', str(shared / 'weights/resnet32-d509ac18.th'),
                            '--seed-n-train', '64', '--n-train', '64', '--n-valid', '32', '--bs', '32', '--epochs', '1',
                            '--gan-epochs', '1', '--sem-epochs', '1', '--colour-epochs', '1',
                            '--images', str(tmp_path / 'img'), '--out', str(tmp_path / 'runs')])
    finally: sys.path.remove(str(EXAMPLES))
    assert list(rows) == ['grey (ab = 0)', 'seed: U-Net only (L1)', 'seed: U-Net + GAN',
                          'semantic: phase 1 (L1 + semantic, EMA)', 'semantic: final (+ colourfulness)', 'truth']
    assert rows['truth']['l1'] == 0 and 0 <= rows['grey (ab = 0)']['top1'] <= 1
    assert rows['seed: U-Net + GAN']['train_min'] > 0 and rows['semantic: final (+ colourfulness)']['train_min'] > 0
    table = (tmp_path / 'img' / 'cifar10_metrics.md').read_text()
    assert 'ResNet-32 top-1' in table and 'semantic: final' in table and 'train min' in table
    gif = Image.open(tmp_path / 'img' / 'cifar_recolourized.gif')
    assert gif.n_frames == 6
    assert Image.open(tmp_path / 'img' / 'cifar10_unet_vs_gan_loss.png').size[0] > 300
    for r in ('seed', 'semantic'):
        for f in ('phase1.pth', 'final.pth', 'final.pkl', 'metrics.json'): assert (tmp_path / 'runs' / r / f).exists()
    for f in ('seed/unet_log.csv', 'seed/gan_log.csv', 'semantic/unet_log.csv', 'semantic/colour_log.csv'):
        assert (tmp_path / 'runs' / f).exists(), f
    # the figures can be redrawn from the saved runs
    sys.path.insert(0, str(EXAMPLES))
    try:
        again = mod['main'](['--data', str(shared / 'data'), '--weights', str(shared / 'weights/resnet20-12fca82f.th'),
                             '--judge', str(shared / 'weights/resnet32-d509ac18.th'), '--n-valid', '32', '--bs', '32',
                             '--images', str(tmp_path / 'img2'), '--out', str(tmp_path / 'runs'), '--figures-only'])
    finally: sys.path.remove(str(EXAMPLES))
    assert list(again) == list(rows) and Image.open(tmp_path / 'img2' / 'cifar_recolourized.gif').n_frames == 6


def test_encoder_transfer_experiment_end_to_end(shared, tmp_path):
    sys.path.insert(0, str(EXAMPLES))
    try:
        mod = runpy.run_path(str(EXAMPLES / 'encoder_transfer.py'), run_name='smoke')
        rows = mod['main'](['--dataset', 'imagenette', '--data', str(shared / 'data'), '--size', '32',
                            '--cifar-weights', str(shared / 'weights/resnet20-12fca82f.th'),
                            '--imagenet-arch', 'mobilenet_v2',
                            '--imagenet-weights', str(shared / 'weights/mobilenet_v2_imagenet.pth'),
                            '--n-train', '32', '--n-valid', '16', '--bs', '16', '--epochs', '1', '--gan-epochs', '1',
                            '--images', str(tmp_path / 'img'), '--out', str(tmp_path / 'runs')])
    finally: sys.path.remove(str(EXAMPLES))
    assert len(rows) == 6 and 'mobilenet_v2 (ImageNet): U-Net + GAN' in rows
    assert Image.open(tmp_path / 'img' / 'diff_encoders_imagenette.gif').n_frames == 4
    assert (tmp_path / 'img' / 'encoder_loss_differences.png').exists()
    assert 'ResNet-20 (CIFAR-10): U-Net only' in (tmp_path / 'img' / 'encoder_transfer_metrics.md').read_text()

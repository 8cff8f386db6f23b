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
                            '--n-train', '64', '--n-valid', '32', '--bs', '32', '--epochs', '1', '--gan-epochs', '1',
                            '--images', str(tmp_path / 'img'), '--out', str(tmp_path / 'runs')])
    finally: sys.path.remove(str(EXAMPLES))
    assert list(rows) == ['grey (ab = 0)', 'U-Net only (L1)', 'U-Net + GAN', 'truth']
    assert rows['truth']['l1'] == 0 and 0 <= rows['grey (ab = 0)']['top1'] <= 1
    table = (tmp_path / 'img' / 'cifar10_metrics.md').read_text()
    assert 'ResNet-20 top-1' in table and 'U-Net + GAN' in table
    gif = Image.open(tmp_path / 'img' / 'cifar_recolourized.gif')
    assert gif.n_frames == 4
    assert Image.open(tmp_path / 'img' / 'cifar10_unet_vs_gan_loss.png').size[0] > 300
    for f in ('unet_log.csv', 'gan_log.csv', 'unet.pth', 'gan.pth'): assert (tmp_path / 'runs' / f).exists()


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

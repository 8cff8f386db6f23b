"""Smoke test: the CIFAR-10 experiment script runs end to end on a tiny subset and writes its figures."""
import json
import runpy
import sys
from pathlib import Path

import torch
from PIL import Image

EXAMPLES = Path(__file__).resolve().parents[1] / 'examples'


def _run_example(name, args):
    sys.path.insert(0, str(EXAMPLES))
    try: return runpy.run_path(str(EXAMPLES / name), run_name='smoke')['main'](args)
    finally: sys.path.remove(str(EXAMPLES))


def test_cifar10_experiment_runs_both_recipes_end_to_end_and_redraws_its_figures(shared, tmp_path):
    common = ['--data', str(shared / 'data'), '--weights', str(shared / 'weights/resnet20-12fca82f.th'),
              '--judge', str(shared / 'weights/resnet32-d509ac18.th'), '--n-valid', '32', '--bs', '32']
    rows = _run_example('cifar10_same_dataset.py', common + [
        '--seed-n-train', '64', '--n-train', '64', '--epochs', '1', '--gan-epochs', '2', '--colour-epochs', '1',
        '--images', str(tmp_path / 'img'), '--out', str(tmp_path / 'runs')])
    assert list(rows) == ['grey (ab = 0)', 'seed: U-Net only (L1)', 'seed: U-Net + GAN', 'cifar10 recipe: L1 phase',
                          'cifar10 recipe: final', 'truth']
    assert rows['truth']['l1'] == 0 and 0 <= rows['grey (ab = 0)']['top1'] <= 1
    assert rows['seed: U-Net + GAN']['train_min'] > 0 and rows['cifar10 recipe: final']['train_min'] > 0
    table = (tmp_path / 'img' / 'cifar10_metrics.md').read_text()
    assert 'ResNet-32 top-1' in table and 'cifar10 recipe: final' in table and 'train min' in table
    assert Image.open(tmp_path / 'img' / 'cifar_recolourized.gif').n_frames == 6
    assert Image.open(tmp_path / 'img' / 'cifar10_unet_vs_gan_loss.png').size[0] > 300
    for r in ('seed', 'cifar10'):
        for f in ('phase1.pth', 'final.pth', 'final.pkl', 'metrics.json'): assert (tmp_path / 'runs' / r / f).exists()
    seed = json.loads((tmp_path / 'runs/seed/metrics.json').read_text())
    assert [len(seed['curves'][k]) for k in ('phase1', 'phase2')] == [1, 2]     # one validation loss per epoch
    assert seed['plan'].startswith('64 training images, Recipe.seed(): 1 L1 + 2 GAN epochs'), seed['plan']
    plan = json.loads((tmp_path / 'runs/cifar10/metrics.json').read_text())['plan']
    assert plan.startswith('64 training images, Recipe.cifar10(): 1 L1 + 1 colour epochs, chroma gain'), plan
    import pandas as pd
    for f in ('unet_log.csv', 'colour_log.csv'):                   # FeatureLoss and the guide train in both phases
        log = pd.read_csv(tmp_path / 'runs/cifar10' / f)
        assert log['loss_feat'].iloc[-1] > 0 and log['loss_class'].iloc[-1] > 0
    again = _run_example('cifar10_same_dataset.py', common + ['--images', str(tmp_path / 'img2'),
                                                              '--out', str(tmp_path / 'runs'), '--figures-only'])
    assert list(again) == list(rows) and Image.open(tmp_path / 'img2' / 'cifar_recolourized.gif').n_frames == 6


def test_encoder_transfer_experiment_end_to_end(shared, tmp_path):
    sys.path.insert(0, str(EXAMPLES))
    args = ['--dataset', 'imagenette', '--data', str(shared / 'data'), '--size', '32',
            '--cifar-weights', str(shared / 'weights/resnet20-12fca82f.th'), '--imagenet-arch', 'mobilenet_v2',
            '--imagenet-weights', str(shared / 'weights/mobilenet_v2_imagenet.pth'),
            '--n-train', '32', '--n-valid', '16', '--bs', '16', '--budget-minutes', '0.01',
            '--images', str(tmp_path / 'img'), '--out', str(tmp_path / 'runs')]
    try:
        mod = runpy.run_path(str(EXAMPLES / 'encoder_transfer.py'), run_name='smoke')
        rows = mod['main'](args + ['--runs', 'resnet20', 'imagenet-frozen', '--seeds', '1', '2'])
        stamp = (tmp_path / 'runs/resnet20_s1/final.pkl').stat().st_mtime_ns
        md = (tmp_path / 'img' / 'encoder_transfer_metrics.md').read_text()
        frames = Image.open(tmp_path / 'img' / 'diff_encoders_imagenette.gif').n_frames   # grey, 2 encoders, truth
        again = mod['main'](args + ['--runs', 'resnet20', '--seeds', '1'])       # finished runs are loaded, not retrained
    finally: sys.path.remove(str(EXAMPLES))
    assert list(rows)[0] == 'grey (ab = 0)' and list(rows)[-1] == 'truth' and len(rows) == 8    # + phase 1 of seed 1
    assert 'mobilenet_v2 (ImageNet), frozen, seed 2: 1 + 1 epochs' in rows
    assert all('spurious_colour' in r for r in rows.values()) and rows['truth']['spurious_colour'] == 0
    assert (tmp_path / 'runs/resnet20_s1/final.pkl').stat().st_mtime_ns == stamp and len(again) == 4
    # frozen means frozen: the encoder's convolutions are still the pretrained ones after training
    from colourgan_fastai import load_colourizer
    from colourgan_fastai.encoders import encoder_body
    G = load_colourizer(tmp_path / 'runs/imagenet-frozen_s1/final.pkl').model
    body = encoder_body('mobilenet_v2', weights=str(shared / 'weights/mobilenet_v2_imagenet.pth'))
    conv = lambda m: next(p for n, p in m.named_parameters() if p.dim() == 4 and p.shape[-1] == 3 and '.1.' in n)
    assert torch.equal(conv(G[0]), conv(body))
    assert 'mean ± half-range over seeds' in md and 'blotch pixels' in md
    w = {r: json.loads((tmp_path / f'runs/{r}_s1/metrics.json').read_text())['semantic_weight']
         for r in ('resnet20', 'imagenet-frozen')}
    assert w == {'resnet20': 0, 'imagenet-frozen': 0}        # off by default, as the library's recipe
    assert frames == 4 and (tmp_path / 'img' / 'encoder_loss_differences.png').exists()


def test_encoder_transfer_budget_planner_counts_the_time_to_load_batches(tiny_learn):
    """The epoch time the budget is planned on includes the data pipeline: a loader that takes 0.1 s per batch costs
    at least 0.1 s per batch, however fast the model is (timing one reused batch would miss it)."""
    import time
    mod = runpy.run_path(str(EXAMPLES / 'encoder_transfer.py'), run_name='smoke')

    class SlowLoader:
        def __init__(self, dl): self.dl = dl
        def __len__(self): return len(self.dl)
        def __iter__(self):
            for b in self.dl:
                time.sleep(0.1)
                yield b

    slow = SlowLoader(tiny_learn.dls.train)
    assert len(slow) >= 3
    assert mod['seconds_per_epoch'](tiny_learn, train_dl=slow) >= len(slow) * 0.1

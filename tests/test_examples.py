"""Smoke test: the CIFAR-10 experiment script runs end to end on a tiny subset and writes its figures."""
import json
import runpy
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

EXAMPLES = Path(__file__).resolve().parents[1] / 'examples'


def test_cifar10_experiment_end_to_end(shared, tmp_path, monkeypatch):
    sys.path.insert(0, str(EXAMPLES))
    try:
        mod = runpy.run_path(str(EXAMPLES / 'cifar10_same_dataset.py'), run_name='smoke')
        rows = mod['main'](['--data', str(shared / 'data'), '--weights', str(shared / 'weights/resnet20-12fca82f.th'),
                            '--judge', str(shared / 'weights/resnet32-d509ac18.th'),
                            '--seed-n-train', '64', '--n-train', '64', '--n-valid', '32', '--bs', '32', '--epochs', '1',
                            '--gan-epochs', '2', '--sem-epochs', '1', '--colour-epochs', '1', '--encoder-lr-div', '10',
                            '--images', str(tmp_path / 'img'), '--out', str(tmp_path / 'runs')])
    finally: sys.path.remove(str(EXAMPLES))
    assert list(rows) == ['grey (ab = 0)', 'seed: U-Net only (L1)', 'seed: U-Net + GAN',
                          'semantic: phase 1', 'semantic: final',
                          'truth']
    assert rows['truth']['l1'] == 0 and 0 <= rows['grey (ab = 0)']['top1'] <= 1
    assert rows['seed: U-Net + GAN']['train_min'] > 0 and rows['semantic: final']['train_min'] > 0
    table = (tmp_path / 'img' / 'cifar10_metrics.md').read_text()
    assert 'ResNet-32 top-1' in table and 'semantic: final' in table and 'train min' in table
    gif = Image.open(tmp_path / 'img' / 'cifar_recolourized.gif')
    assert gif.n_frames == 6
    assert Image.open(tmp_path / 'img' / 'cifar10_unet_vs_gan_loss.png').size[0] > 300
    for r in ('seed', 'semantic'):
        for f in ('phase1.pth', 'final.pth', 'final.pkl', 'metrics.json'): assert (tmp_path / 'runs' / r / f).exists()
    saved = json.loads((tmp_path / 'runs/seed/metrics.json').read_text())
    assert [len(saved['curves'][k]) for k in ('phase1', 'phase2')] == [1, 2]     # one validation loss per epoch
    plan = json.loads((tmp_path / 'runs/semantic/metrics.json').read_text())['plan']    # step 19's recipe, by default
    assert plan.startswith('64 training images, 1 epochs') and ('(EMA) + 0.003·class guidance (encoder at lr/10), then 1 '
                                                               'on 61 images with + 3·colourfulness + 2·PSNR loss; '
                                                               'flip-averaged; chroma gain') in plan, plan
    assert saved['plan'].startswith('64 training images, 1 L1 + 2 GAN epochs'), saved['plan']
    assert saved['wall_s'] > saved['valid_s'] > 0 and saved['cpu_s'] > 0
    for f in ('seed/unet_log.csv', 'seed/gan_log.csv', 'semantic/unet_log.csv', 'semantic/colour_log.csv'):
        assert (tmp_path / 'runs' / f).exists(), f
    import pandas as pd
    for f in ('unet_log.csv', 'colour_log.csv'):                   # FeatureLoss trained in both phases, by default
        assert pd.read_csv(tmp_path / 'runs/semantic' / f)['loss_feat'].iloc[-1] > 0
    # the figures can be redrawn from the saved runs
    sys.path.insert(0, str(EXAMPLES))
    try:
        again = mod['main'](['--data', str(shared / 'data'), '--weights', str(shared / 'weights/resnet20-12fca82f.th'),
                             '--judge', str(shared / 'weights/resnet32-d509ac18.th'), '--n-valid', '32', '--bs', '32',
                             '--images', str(tmp_path / 'img2'), '--out', str(tmp_path / 'runs'), '--figures-only'])
    finally: sys.path.remove(str(EXAMPLES))
    assert list(again) == list(rows) and Image.open(tmp_path / 'img2' / 'cifar_recolourized.gif').n_frames == 6
    # the semantic recipe's colour phase alone, continuing from a finished run's phase 1: same start, time carried over
    sys.path.insert(0, str(EXAMPLES))
    try:
        args = ['--data', str(shared / 'data'), '--weights', str(shared / 'weights/resnet20-12fca82f.th'),
                '--judge', str(shared / 'weights/resnet32-d509ac18.th'), '--n-train', '64', '--n-valid', '32',
                '--bs', '32', '--recipes', 'semantic', '--colour-epochs', '1', '--phase1-from',
                str(tmp_path / 'runs' / 'semantic'), '--images', str(tmp_path / 'img3'), '--out', str(tmp_path / 'runs3')]
        cont = mod['main'](args + ['--sem-epochs', '1'])
        with pytest.raises(SystemExit, match='ran 1 phase-1 epochs'): mod['main'](args + ['--sem-epochs', '4'])
        with pytest.raises(SystemExit, match='--set-aside'):        # step 12's defaults set no images aside
            mod['main'](args + ['--sem-epochs', '1', '--calibrate', '1', '--defaults', '12'])
        with pytest.raises(SystemExit, match='contradict'): mod['main'](args + ['--calibrate', '1', '--no-calibrate'])
        with pytest.raises(SystemExit, match='--encoder-lr-div must be positive'):
            mod['main'](args + ['--sem-epochs', '1', '--encoder-lr-div', '0'])
        with pytest.raises(SystemExit, match='with --phase1-from phase 1 does not run'):
            mod['main'](args + ['--sem-epochs', '1', '--encoder-lr-div', '10'])
        # step 17's colour phase: 16 training images set aside, FeatureLoss 1, flip averaging, gain fitted on the 16;
        # refused after a phase 1 that trained on those 16, run whole, then continued from its own phase 1
        step17 = ['--set-aside', '16', '--colour-feature-weight', '1', '--flip-average', '--calibrate', '1']
        with pytest.raises(SystemExit, match='did not set the same 16 images aside'):
            mod['main'](args + ['--sem-epochs', '1'] + step17)
        whole = mod['main'](args[:args.index('--phase1-from')] + ['--out', str(tmp_path / 'runs4'), '--images',
                            str(tmp_path / 'img4'), '--sem-epochs', '1'] + step17)
        args[args.index('--phase1-from') + 1] = str(tmp_path / 'runs4' / 'semantic')
        again = mod['main'](args + ['--sem-epochs', '1'] + step17)
    finally: sys.path.remove(str(EXAMPLES))
    earlier = pd.read_csv(tmp_path / 'runs/semantic/unet_log.csv')['time']
    assert cont['semantic: phase 1'] == rows['semantic: phase 1']
    # the phase-1 row is phase 1's weights predicting plainly, though each final generator has its own gain
    assert again['semantic: phase 1'] == whole['semantic: phase 1']
    plan = json.loads((tmp_path / 'runs3/semantic/metrics.json').read_text())['plan']
    assert plan.startswith('48 training images') and '+ 1·feature; flip-averaged; chroma gain' in plan, plan
    from colourgan_fastai import load_colourizer
    G = load_colourizer(tmp_path / 'runs3/semantic/final.pkl').model
    assert G.flip_average and G.chroma_gain != 1                 # exported as scored
    assert pd.read_csv(tmp_path / 'runs3/semantic/colour_log.csv')['loss_feat'].iloc[-1] > 0
    assert cont['semantic: final']['train_min'] * 60 >= sum(
        int(t.split(':')[0]) * 60 + int(t.split(':')[1]) for t in earlier)
    assert (tmp_path / 'runs3/semantic/unet_log.csv').exists()


def test_cifar10_experiment_with_class_guidance_and_its_refusals(shared, tmp_path):
    """--class-weight: a guided U-Net trained with ClassGuidanceLoss in both phases; runs saved from it need the flag.
    With step 19's --colour-set-aside: phase 1 on every training image, the colour phase and the gain on the rest."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        mod = runpy.run_path(str(EXAMPLES / 'cifar10_same_dataset.py'), run_name='smoke')
        base = ['--data', str(shared / 'data'), '--weights', str(shared / 'weights/resnet20-12fca82f.th'),
                '--judge', str(shared / 'weights/resnet32-d509ac18.th'), '--n-train', '64', '--n-valid', '32',
                '--bs', '32', '--recipes', 'semantic', '--sem-epochs', '1', '--colour-epochs', '1',
                '--images', str(tmp_path / 'img')]
        with pytest.raises(SystemExit, match='--class-weight must be >= 0'):
            mod['main'](base + ['--out', str(tmp_path / 'bad'), '--class-weight', '-1'])
        with pytest.raises(SystemExit, match='give one'):
            mod['main'](base + ['--out', str(tmp_path / 'bad'), '--set-aside', '16', '--colour-set-aside', '16'])
        (tmp_path / 'aside').mkdir(); (tmp_path / 'aside/phase1.json').write_text('{"set_aside": 16, "seed": 42}')
        with pytest.raises(SystemExit, match='set training images aside'):
            mod['main'](base + ['--out', str(tmp_path / 'bad'), '--colour-set-aside', '16', '--phase1-from',
                                str(tmp_path / 'aside')])
        step19 = ['--colour-set-aside', '16', '--flip-average', '--calibrate', '1']
        mod['main'](base + ['--out', str(tmp_path / 'runs'), '--class-weight', '0.05'] + step19)
        with pytest.raises(SystemExit, match='trained with a class guide'):         # figures need a guide too
            mod['main'](base + ['--out', str(tmp_path / 'runs'), '--figures-only', '--class-weight', '0'])
        redrawn = mod['main'](base + ['--out', str(tmp_path / 'runs'), '--figures-only', '--class-weight', '0.05'])
        with pytest.raises(SystemExit, match='trained with a class guide'):         # so does its phase 1
            mod['main'](base + ['--out', str(tmp_path / 'cont'), '--phase1-from', str(tmp_path / 'runs/semantic'),
                                '--defaults', '12'])
    finally: sys.path.remove(str(EXAMPLES))
    import pandas as pd
    saved = json.loads((tmp_path / 'runs/semantic/metrics.json').read_text())
    assert saved['plan'].startswith('64 training images') and '(EMA) + 0.05·class guidance, then 1 on 48 images' \
        in saved['plan'] and 'fitted on 16 set-aside images' in saved['plan'], saved['plan']
    for f in ('unet_log.csv', 'colour_log.csv'):                                  # the term trained in both phases
        assert pd.read_csv(tmp_path / 'runs/semantic' / f)['loss_class'].iloc[-1] > 0
    assert 'semantic: final' in redrawn
    from colourgan_fastai import load_colourizer
    assert load_colourizer(tmp_path / 'runs/semantic/final.pkl').model.guide is not None


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


def _encoder_transfer(shared, tmp_path, *extra):
    """(module, rows) of examples/encoder_transfer.py run on a tiny ResNet-20 Imagenette setting at 32 px (seed 1,
    a budget that fits one epoch per phase) with the `extra` arguments."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        mod = runpy.run_path(str(EXAMPLES / 'encoder_transfer.py'), run_name='smoke')
        rows = mod['main'](['--dataset', 'imagenette', '--data', str(shared / 'data'), '--size', '32',
                            '--cifar-weights', str(shared / 'weights/resnet20-12fca82f.th'), '--n-train', '32',
                            '--n-valid', '16', '--bs', '16', '--budget-minutes', '0.01', '--runs', 'resnet20',
                            '--seeds', '1', '--images', str(tmp_path / 'img'), '--out', str(tmp_path / 'runs'), *extra])
    finally: sys.path.remove(str(EXAMPLES))
    return mod, rows


def test_encoder_transfer_progressive_resizing_plan_and_run(shared, tmp_path):
    "--progressive: the budget is split between small and full-size phase-1 epochs, and such a run trains and tabulates."
    mod, rows = _encoder_transfer(shared, tmp_path, '--progressive', '16')
    plan = mod['plan_epochs']
    assert plan(100, 10, 20, 1) == (0, 8)                  # all full size: (100 - 20) // 10
    assert plan(100, 10, 20, 1, per_small=4) == (5, 6)     # 5 pairs of 14 s = 70, then 10 s: one more full
    assert plan(100, 10, 20, 1, per_small=5) == (6, 5)     # 5 pairs = 75, then 5 s: one more small
    assert plan(10, 10, 20, 1, per_small=4) == (0, 1)      # over budget: still one epoch
    res = json.loads((tmp_path / 'runs/resnet20-p16_s1/metrics.json').read_text())
    assert res['small_size'] == 16 and 'progressive 16→32 px' in res['name']
    assert any('progressive 16→32 px' in k for k in rows)


def test_encoder_transfer_seed_recipe_in_the_same_budget(shared, tmp_path):
    "--recipe seed: L1 then the PatchGAN, equal epochs fitted to the budget; its own run folder; G exported alone."
    with pytest.raises(SystemExit): _encoder_transfer(shared, tmp_path, '--recipe', 'seed', '--progressive', '16')
    _, rows = _encoder_transfer(shared, tmp_path, '--recipe', 'seed')
    res = json.loads((tmp_path / 'runs/resnet20-seed_s1/metrics.json').read_text())
    assert res['recipe'] == 'seed' and res['epochs'] == [1, 1] and 'seed recipe' in res['name']
    assert 'ResNet-20 (CIFAR-10), seed recipe, seed 1: 1 + 1 epochs' in rows
    assert 'seed recipe' in (tmp_path / 'img' / 'encoder_transfer_metrics.md').read_text()
    log = (tmp_path / 'runs/resnet20-seed_s1/gan_log.csv').read_text()
    assert 'loss_D' in log                                   # the second phase trained a discriminator
    from colourgan_fastai import load_colourizer
    learn = load_colourizer(tmp_path / 'runs/resnet20-seed_s1/final.pkl')
    assert not any(type(c).__name__ == 'GANColourizer' for c in learn.cbs)


def test_encoder_transfer_colourfulness_weight_reaches_the_colour_phase(shared, tmp_path):
    "--colourfulness-weight W: the colour phase runs with it (0 leaves the term out), in a run folder of its own."
    _encoder_transfer(shared, tmp_path, '--colourfulness-weight', '0')
    run = tmp_path / 'runs/resnet20-cf0_s1'
    res = json.loads((run / 'metrics.json').read_text())
    assert res['colourfulness_weight'] == 0 and 'colour weight 0' in res['name']
    header = (run / 'colour_log.csv').read_text().splitlines()[0]
    assert 'loss_psnr' in header and 'loss_cf' not in header     # the colour phase ran, without ColourfulnessLoss


def test_encoder_transfer_feature_weight_adds_feature_loss_in_both_phases(shared, tmp_path):
    "--feature-weight W: FeatureLoss through the encoder's own network runs in phase 1 and the colour phase."
    _encoder_transfer(shared, tmp_path, '--feature-weight', '0.3')
    run = tmp_path / 'runs/resnet20-feat0.3_s1'
    res = json.loads((run / 'metrics.json').read_text())
    assert res['feature_weight'] == 0.3 and 'FeatureLoss 0.3' in res['name']
    for log in ('unet_log.csv', 'colour_log.csv'):
        assert 'loss_feat' in (run / log).read_text().splitlines()[0], log


def test_encoder_transfer_phase1_epochs_overrides_the_planner(shared, tmp_path):
    "--phase1-epochs E trains E + colour epochs whatever the budget fits (seeds compared at equal epochs)."
    for bad in (['--phase1-epochs', '0'], ['--phase1-epochs', '2', '--recipe', 'seed']):
        with pytest.raises(SystemExit): _encoder_transfer(shared, tmp_path, *bad)
    _encoder_transfer(shared, tmp_path, '--phase1-epochs', '2')            # the 0.01-min budget plans 1 + 1
    assert json.loads((tmp_path / 'runs/resnet20_s1/metrics.json').read_text())['epochs'] == [2, 1]


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

"""Keeps bench/run.py working (no timing is asserted: numbers belong in bench/RESULTS.md)."""
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / 'bench' / 'run.py'


def test_bench_runs_on_a_tiny_setting(tmp_path):
    names = ['floor_gan', 'ours_gan', 'fastai_gan', 'ours_gan_bf16', 'data_ours', 'data_tutorial']
    out = subprocess.run([sys.executable, str(BENCH), '--tiny', '--only', *names,
                          '--json', str(tmp_path / 'r.json')], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert '| ours |' in out.stdout and 'ours / fastai GANLearner (GAN)' in out.stdout
    assert 'ours bf16 / ours fp32' in out.stdout and 'data pipeline' in out.stdout
    import json
    r = json.loads((tmp_path / 'r.json').read_text())['cifar']
    assert set(r) == set(names)
    assert all(r[k]['img_s'] > 0 for k in names[:4]) and r['data_ours']['batches_s'] > 0
    assert r['data_ours']['cache_ms_per_img'] > 0


def test_colour_phase_screen_trains_a_variant_from_a_phase1_model_and_tabulates_it(shared, tmp_path):
    "bench/colour_phase_screen.py: the per-image CF variant and PSNRLoss train; tuning and test rows; the table."
    import runpy
    from colourgan_fastai import cifar10_dls, colour_learner, resnet20_cifar
    w = str(shared / 'weights/resnet20-12fca82f.th')
    learn = colour_learner(cifar10_dls(shared / 'data', n_train=64, n_valid=16), arch=resnet20_cifar(w))
    learn.path, learn.model_dir = tmp_path, '.'
    learn.save('p1')
    mod = runpy.run_path(str(BENCH.parent / 'colour_phase_screen.py'), run_name='x')
    args = ['--data', str(shared / 'data'), '--weights', w, '--judge', str(shared / 'weights/resnet32-d509ac18.th'),
            '--init', str(tmp_path / 'p1.pth'), '--n-train', '64', '--n-tune', '32', '--n-test', '32',
            '--out', str(tmp_path / 'screen')]
    r = mod['main'](args + ['--name', 'v', '--cf', '0', '--cf-per-image', '1', '--psnr', '0.2'])
    assert set(r['rows']) == {'tune', 'test'} and 0 <= r['rows']['test']['top1'] <= 1
    assert r['rows']['tune']['l1'] > 0 and (tmp_path / 'screen' / 'v.json').exists()
    assert '| v |' in mod['table'](tmp_path / 'screen')

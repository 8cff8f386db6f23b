"""Keeps bench/run.py working (no timing is asserted: numbers belong in bench/RESULTS.md)."""
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / 'bench' / 'run.py'


def test_bench_runs_on_a_tiny_setting(tmp_path):
    out = subprocess.run([sys.executable, str(BENCH), '--tiny', '--only', 'floor_gan', 'ours_gan', 'fastai_gan',
                          '--json', str(tmp_path / 'r.json')], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert '| ours |' in out.stdout and 'ours / fastai GANLearner (GAN)' in out.stdout
    import json
    r = json.loads((tmp_path / 'r.json').read_text())['cifar']
    assert set(r) == {'floor_gan', 'ours_gan', 'fastai_gan'} and all(v['img_s'] > 0 for v in r.values())

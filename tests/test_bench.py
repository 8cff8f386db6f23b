"""Keeps bench/run.py working (no timing is asserted: numbers belong in bench/RESULTS.md)."""
import json
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
    from colourgan_fastai.precision import cpu_bf16_native
    if cpu_bf16_native() is False:           # an AVX2-only CPU: bf16 would be emulated, so the bench skips it, saying so
        assert 'skipped ours_gan_bf16: this CPU has no bf16 units' in out.stdout
        names.remove('ours_gan_bf16')
    r = json.loads((tmp_path / 'r.json').read_text())['cifar']
    assert set(r) == set(names)
    assert all(r[k]['img_s'] > 0 for k in names if k.startswith(('floor', 'ours', 'fastai')))
    assert r['data_ours']['batches_s'] > 0
    assert r['data_ours']['cache_ms_per_img'] > 0

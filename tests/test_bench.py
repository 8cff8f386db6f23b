"""Keeps bench/run.py working (no timing is asserted: numbers belong in bench/RESULTS.md)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_colour_phase_screen_trains_a_variant_from_a_phase1_model_and_tabulates_it(shared, tmp_path):
    "bench/colour_phase_screen.py: per-image CF, PSNRLoss, FeatureLoss variants train; tuning and test rows; table."
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
    assert set(r['rows']) == {'tune', 'test', 'tune_grey', 'tune_truth'} and 0 <= r['rows']['test']['top1'] <= 1
    assert r['terms'] == ['loss_cf_per_image', 'loss_psnr', 'loss_semantic']      # --sem 0.05: the screen's default
    assert r['rows']['tune']['l1'] > 0 and (tmp_path / 'screen' / 'v.json').exists()
    assert '| v |' in mod['table'](tmp_path / 'screen')
    r = mod['main'](args + ['--name', 'f', '--sem', '0', '--feature', '0.3', '--export', str(tmp_path / 'f.pkl'),
                            '--flip-average', '--calibrate', '0.5'])
    assert r['terms'] == ['loss_cf', 'loss_feat']                                     # today's recipe's terms
    assert r['rows']['tune']['delta_colourfulness'] == pytest.approx(0.5, abs=0.011)  # calibrated on the tuning set
    from colourgan_fastai import load_colourizer
    G = load_colourizer(tmp_path / 'f.pkl').model                 # loads, and maps L to ab (checked there)
    assert G.flip_average and G.chroma_gain == r['chroma_gain']   # scored as exported
    assert r['rows']['tune_truth']['l1'] == 0 and r['rows']['tune_grey']['colourfulness'] < 0.01  # the rule's references
    assert mod['main'](['--out', str(tmp_path / 'screen'), '--choose']) in {'v', 'f'}
    guided = colour_learner(cifar10_dls(shared / 'data', n_train=64, n_valid=16), arch=resnet20_cifar(w),
                            class_guidance=10)                    # step 19: a phase 1 with a class guide
    guided.path, guided.model_dir = tmp_path, '.'
    guided.save('p1g')
    args[args.index('--init') + 1] = str(tmp_path / 'p1g.pth')
    r = mod['main'](args + ['--name', 'c', '--sem', '0', '--feature', '0.3', '--class-weight', '0.01',
                            '--export', str(tmp_path / 'c.pkl')])
    assert r['terms'] == ['loss_cf', 'loss_class', 'loss_feat']
    assert load_colourizer(tmp_path / 'c.pkl').model.guide is not None


def test_step_17_rule_keeps_fidelity_then_takes_the_stand_in_judges_best(tmp_path):
    "choose(): highest ResNet-20 top-1 among the variants that keep the fidelity lines; else the highest PSNR."
    import runpy
    mod = runpy.run_path(str(BENCH.parent / 'colour_phase_screen.py'), run_name='x')
    grey = dict(psnr=25.0, ssim=0.95)
    def write(name, psnr, ssim, top1, with_grey=True):
        rows = dict(tune=dict(psnr=psnr, ssim=ssim, top1=top1), **({'tune_grey': grey} if with_grey else {}))
        (tmp_path / f'{name}.json').write_text(json.dumps(dict(rows=rows)))
    with pytest.raises(SystemExit, match='grey'): mod['choose'](tmp_path)
    write('old', 30, 0.99, 0.99, with_grey=False)                 # steps 14-16's files take no part
    write('a', 24.6, 0.947, 0.80); write('b', 24.5, 0.945, 0.82)  # both on the lines (b exactly)
    write('c', 24.4, 0.96, 0.90); write('d', 24.9, 0.944, 0.95)   # PSNR, then SSIM, under its line
    assert mod['choose'](tmp_path) == ('b', dict(a=True, b=True, c=False, d=False))
    for f in ('a', 'b'): (tmp_path / f'{f}.json').unlink()
    assert mod['choose'](tmp_path)[0] == 'd'                      # none keeps fidelity: the highest PSNR


def test_screen_tunes_on_exactly_the_images_the_example_set_aside_from_phase_1(shared):
    "--tune-set-aside: the screen's tuning images are the ones `cifar10_same_dataset.py --set-aside` never trains on."
    import runpy
    examples = str(BENCH.parents[1] / 'examples')
    screen = runpy.run_path(str(BENCH.parent / 'colour_phase_screen.py'), run_name='x')
    sys.path.insert(0, examples)
    try: example = runpy.run_path(examples + '/cifar10_same_dataset.py', run_name='x')
    finally: sys.path.remove(examples)
    def split(*args): return screen['tuning_split'](screen['parser']().parse_args(['--data', str(shared / 'data'), *args]))
    def trained(recipe, *args):                # (images the recipe trains on, the loader of those set aside)
        a = example['parser']().parse_args(['--data', str(shared / 'data'), '--n-valid', '8', *args])
        dls, aside, colour_dls = example['recipe_dls'](recipe, a)
        assert colour_dls is None                                   # --set-aside: one training set for both phases
        return list(dls.train_ds.items), aside
    tune, rest = split('--tune-set-aside', '--n-tune', '300', '--seed', '7')
    phase1, aside = trained('semantic', '--set-aside', '300', '--seed', '7')       # all 50,000 but the 300
    assert len(tune) == 300 and len(phase1) == 49700 and not set(tune) & set(phase1)
    assert list(aside.items) == tune                       # the example's gain is fitted on the screen's tuning images
    assert rest == phase1                                  # the colour phase draws from phase 1's images, none other
    assert split('--tune-set-aside', '--n-tune', '300', '--seed', '8')[0] != tune     # seeded like hold_out
    assert split('--n-tune', '300', '--seed', '8')[0] == split('--n-tune', '300', '--seed', '7')[0]  # steps 14-16
    seed_recipe = trained('seed', '--set-aside', '300', '--seed-n-train', '64')
    assert len(seed_recipe[0]) == 64 and seed_recipe[1] is None                      # the seed recipe: unchanged


def test_time_to_quality_compares_every_column_and_resumes(shared, tmp_path):
    "bench/time_to_quality.py: seed run, a ladder of semantic runs, the column rule, the clocks; finished runs reload."
    import runpy
    mod = runpy.run_path(str(BENCH.parent / 'time_to_quality.py'), run_name='x')
    ref = dict(l1=0.09, psnr=23.2, ssim=0.92, delta_colourfulness=-1.4, top1=0.755)
    better = dict(l1=0.08, psnr=24.0, ssim=0.94, delta_colourfulness=0.6, top1=0.78)
    assert all(mod['at_least_as_good'](better, ref).values())
    # ΔCF counts by its size, whichever way it misses; each column has its own direction
    assert mod['at_least_as_good']({**better, 'delta_colourfulness': -1.5}, ref) == {
        'l1': True, 'psnr': True, 'ssim': True, 'delta_colourfulness': False, 'top1': True}
    assert not mod['at_least_as_good']({**better, 'l1': 0.1}, ref)['l1']
    args = ['--data', str(shared / 'data'), '--weights', str(shared / 'weights/resnet20-12fca82f.th'),
            '--judge', str(shared / 'weights/resnet32-d509ac18.th'), '--seed-epochs', '1', '1', '--seed-n-train', '64',
            '--ladder', '64:1:1', '--n-valid', '32', '--bs', '32', '--out', str(tmp_path / 'ttq')]
    r = mod['main'](args)
    seed_run = tmp_path / 'ttq/seed_64_1_1/seed/metrics.json'
    assert list(r['rows']) == ['seed recipe, 64 images, 1 + 1 epochs', 'semantic recipe, 64 images, 1 + 1 epochs']
    assert all(v['wall_s'] > v['valid_s'] > 0 and v['cpu_s'] > 0 for v in r['rows'].values())
    md = (tmp_path / 'ttq/time_to_quality.md').read_text()
    assert 'wall / seed' in md and 'CPU / seed' in md and ('| every column |' in md) == (r['found'] is not None)
    stamp = seed_run.stat().st_mtime_ns
    again = mod['main'](args)                                     # nothing retrained: same numbers
    assert seed_run.stat().st_mtime_ns == stamp and again['rows'] == r['rows']
    # another recipe's rungs: its options reach the example, its runs get their own folders, the seed run is reused
    guided = mod['main'](args + ['--label', "step 19's recipe", '--recipe-args',
                                 '--class-weight 0.003 --colour-set-aside 16 --calibrate 1 --sem-epochs 5'])
    assert seed_run.stat().st_mtime_ns == stamp and list(guided['rows'])[1] == "step 19's recipe, 64 images, 1 + 1 epochs"
    plan = json.loads((tmp_path / 'ttq/semantic_64_1_1_step_19_s_recipe/semantic/metrics.json').read_text())['plan']
    assert '1 epochs L1' in plan and 'class guidance, then 1 on 48 images' in plan and 'fitted on 16' in plan, plan


def test_photo_colour_screen_trains_a_per_image_variant_from_a_phase1_model(shared, tmp_path):
    "bench/photo_colour_screen.py: one colour epoch from a saved MobileNetV2 phase 1; scores, blotches, an export."
    import runpy
    from colourgan_fastai import imagenette_dls, colour_learner
    w = str(shared / 'weights/mobilenet_v2_imagenet.pth')
    data = dict(n_train=32, n_valid=16, size=32, bs=16)
    learn = colour_learner(imagenette_dls(shared / 'data', **data), arch='mobilenet_v2', weights=w)
    learn.path, learn.model_dir = tmp_path, '.'
    learn.save('p1')
    mod = runpy.run_path(str(BENCH.parent / 'photo_colour_screen.py'), run_name='x')
    r = mod['main'](['--data', str(shared / 'data'), '--weights', w, '--init', str(tmp_path / 'p1.pth'), '--name', 'v',
                     '--per-image', '--n-train', '32', '--n-valid', '16', '--size', '32', '--bs', '16',
                     '--out', str(tmp_path / 'screen')])
    assert r['valid']['l1'] > 0 and 0 <= r['valid']['spurious_colour'] <= 1 and r['args']['per_image']
    assert r['terms'] == ['loss_cf_per_image', 'loss_psnr']                 # the per-image gap, not the batch's
    assert (tmp_path / 'screen' / 'v.json').exists() and (tmp_path / 'screen' / 'v.pkl').exists()


def test_flip_average_bench_scores_both_ways(shared, model_file, tmp_path):
    "bench/flip_average.py: plain and flip-averaged rows (blotches included), the time ratio, the JSON."
    import json
    import runpy
    mod = runpy.run_path(str(BENCH.parent / 'flip_average.py'), run_name='x')
    r = mod['main'](['--model', str(model_file), '--dataset', 'cifar10', '--data', str(shared / 'data'),
                     '--size', '32', '--n-valid', '32', '--bs', '16', '--repeats', '1', '--out', str(tmp_path / 'f.json')])
    plain, flip = r['rows']['plain'], r['rows']['flip averaging']
    assert r['n_valid'] == 32 and 'spurious_colour' in plain and plain['psnr'] != flip['psnr']
    assert r['time_ratio'] > 0 and json.loads((tmp_path / 'f.json').read_text())['rows'] == r['rows']


def test_gradient_scale_reports_each_terms_pull_on_the_encoder(shared):
    "bench/gradient_scale.py: every term sends a gradient to the encoder, measured before and after training steps."
    import runpy
    mod = runpy.run_path(str(BENCH.parent / 'gradient_scale.py'), run_name='x')
    r = mod['main'](['--data', str(shared / 'data'), '--weights', str(shared / 'weights/resnet20-12fca82f.th'),
                     '--steps', '2', '--batches', '1'])
    assert list(r) == ['start', 'after 2 steps']
    for when in r.values():
        assert set(when) == {'l1', 'feature', 'class_kl'} and all(v['grad'] > 0 and v['value'] > 0 for v in when.values())


def test_calibration_margin_measures_the_sampling_error_of_a_fitted_gain(shared, model_file, tmp_path):
    """bench/calibration_margin.py: on images whose gaps scatter by sd 5, a gain fitted on 2,000 and read on 5,000
    misses its gap by 5 * sqrt(1/2000 + 1/5000) = 0.13 (1 sd); without scatter it never misses; then a real run."""
    import runpy
    import numpy as np
    mod = runpy.run_path(str(BENCH.parent / 'calibration_margin.py'), run_name='x')
    gains, rng = mod['GAINS'], np.random.default_rng(0)
    truth = 25 + rng.normal(0, 5, 2000)
    cf = 20 * gains[None, :] * np.ones((2000, 1))                       # every image's colour grows with the gain
    assert mod['gain_for'](truth, cf, 1.) == pytest.approx((truth.mean() - 1) / 20, abs=1e-3)
    r = mod['margin'](truth, cf, np.zeros_like(cf), n_test=5000, line=1., k=2., splits=300)
    assert r['sd'] == pytest.approx(5 * np.sqrt(1 / 2000 + 1 / 5000), rel=0.15) and r['aim'] == pytest.approx(0.7)
    exact = mod['margin'](cf[:, 40] * 1.25, cf, np.zeros_like(cf), splits=50)     # the same ratio in every image
    assert exact['sd'] < 1e-6 and exact['aim'] == pytest.approx(1.)
    out = mod['main'](['--model', str(model_file), '--data', str(shared / 'data'), '--n-train', '64',
                       '--set-aside', '16', '--splits', '20', '--bs', '16', '--out', str(tmp_path / 'm.json')])
    assert out['n'] == 16 and out['sd'] > 0 and list(out['psnr_by_gap']) == ['0', '0.25', '0.5', '0.75', '1']
    assert (tmp_path / 'm.json').exists()

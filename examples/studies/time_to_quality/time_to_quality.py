"""Time to quality (README, Case 1): the wall time the library's recipe needs to match the seed recipe's full
20 + 20-epoch result on *every* column, as a ratio of the seed recipe's own time, measured in one run on one machine.

Both recipes run through examples/cifar10_same_dataset.py (same data, same seed, same 5,000 test images, the same
independent ResNet-32 judge). First the seed recipe in full; then the semantic recipe on a ladder of growing budgets
(`--ladder N:E:C` = N training images, E phase-1 epochs, C colour epochs), cheapest first, stopping at the first rung
that is at least as good as the seed on every column: L1 and |ΔCF| no larger, PSNR, SSIM and judge top-1 no smaller.
Each run's result is kept in `<out>/<run>/<recipe>/metrics.json`, so an interrupted bench resumes where it stopped.
Keep the machine otherwise idle while it runs: the ratio is of wall times.

    python bench/time_to_quality.py --data ../shared/data          # about 1-1.5 h on a 2-core CPU
    python bench/time_to_quality.py --label "step 12's recipe" --recipe-args="--defaults 12"   # an earlier recipe
"""
import argparse
import json
import re
import runpy
import shlex
import sys
from pathlib import Path

from colourgan_fastai.precision import cpu_description

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / 'examples' / 'cifar10_same_dataset.py'
# column -> True when larger is better; ΔCF is compared by its magnitude
COLUMNS = {'l1': False, 'psnr': True, 'ssim': True, 'delta_colourfulness': False, 'top1': True}
LABELS = {'l1': 'L1', 'psnr': 'PSNR dB', 'ssim': 'SSIM', 'delta_colourfulness': 'ΔCF (size)', 'top1': 'ResNet-32 top-1'}


def parser():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--data', default='../shared/data')
    p.add_argument('--weights', default='../shared/weights/resnet20-12fca82f.th')
    p.add_argument('--judge', default='../shared/weights/resnet32-d509ac18.th')
    p.add_argument('--seed-epochs', type=int, nargs=2, default=[20, 20], metavar=('L1', 'GAN'),
                   help="the seed recipe's epochs (its full run: 20 + 20)")
    p.add_argument('--seed-n-train', type=int, default=8000, help='the seed used 8,000 training images')
    p.add_argument('--ladder', nargs='+', default=['10000:1:1', '20000:1:1', '50000:1:1', '50000:2:1'],
                   help="the semantic recipe's budgets, N:E:C (training images : phase-1 epochs : colour epochs), "
                        "tried in this order")
    p.add_argument('--recipe-args', default='', metavar='ARGS',
                   help="more options of cifar10_same_dataset.py for every rung (e.g. \"--defaults 12\" for step 12's "
                        "recipe, or \"--class-weight 0\"); a rung's own images and epochs win over them")
    p.add_argument('--label', default='semantic recipe', help="the rungs' name in the table (and, unless the default, "
                   "in their run folders, so that rungs of different --recipe-args never share a run)")
    p.add_argument('--n-valid', type=int, help='test images scored (default: all 5,000)')
    p.add_argument('--bs', type=int, default=64); p.add_argument('--seed', type=int, default=42)
    p.add_argument('--out', default='runs/time_to_quality', help='runs, logs and the table (never committed)')
    return p


def final_row(run_dir: Path):
    "The final model's scores and the training wall time of one finished run, from its metrics.json."
    saved = json.loads((run_dir / 'metrics.json').read_text())
    return {**list(saved['rows'].values())[-1], 'wall_s': saved['wall_s'], 'cpu_s': saved['cpu_s'],
            'valid_s': saved['valid_s'] * sum(saved['epochs'])}


def run(a, name, recipe, extra):
    "Train (or load, when already finished) one run of the example; returns its final row."
    out = Path(a.out) / name
    if not (out / recipe / 'metrics.json').exists():
        args = ['--data', a.data, '--weights', a.weights, '--judge', a.judge, '--recipes', recipe, '--bs', str(a.bs),
                '--seed', str(a.seed), '--out', str(out), '--images', str(out / 'images')] + extra
        if a.n_valid: args += ['--n-valid', str(a.n_valid)]
        sys.path.insert(0, str(EXAMPLE.parent))
        try: runpy.run_path(str(EXAMPLE), run_name='bench')['main'](args)
        finally: sys.path.remove(str(EXAMPLE.parent))
    return final_row(out / recipe)


def at_least_as_good(row, ref):
    "Column -> whether `row` matches or beats `ref` on it."
    return {c: (abs(row[c]) <= abs(ref[c]) if c == 'delta_colourfulness' else
                row[c] >= ref[c] if up else row[c] <= ref[c]) for c, up in COLUMNS.items()}


def fmt(c, v):
    return (f'{v:.1%}' if c == 'top1' else f'{abs(v):.2f}' if c in ('psnr', 'delta_colourfulness')
            else f'{v:.4f}')


def table(rows, ref_name):
    "Quality columns (✗: worse than the seed's) and three clocks, each as a ratio of the seed recipe's."
    ref = rows[ref_name]
    train = lambda r: r['wall_s'] - r['valid_s']
    clocks = {'wall': lambda r: r['wall_s'], 'training only': train, 'CPU': lambda r: r['cpu_s']}
    head = ('| run | ' + ' | '.join(LABELS.values()) + ' | matches seed on | wall min | of which validation min | '
            + ' | '.join(f'{k} / seed' for k in clocks) + ' |\n' + '|---' * (len(COLUMNS) + 4 + len(clocks)) + '|\n')
    lines = []
    for name, r in rows.items():
        ok = at_least_as_good(r, ref)
        cells = [fmt(c, r[c]) + ('' if name == ref_name or ok[c] else ' ✗') for c in COLUMNS]
        match = '—' if name == ref_name else ('every column' if all(ok.values()) else
                                              f'{sum(ok.values())} of {len(ok)}')
        ratios = [f'{f(r) / f(ref):.2f}' for f in clocks.values()]
        lines.append(f"| {name} | {' | '.join(cells)} | {match} | {r['wall_s'] / 60:.1f} | {r['valid_s'] / 60:.1f} | "
                     + ' | '.join(ratios) + ' |')
    return head + '\n'.join(lines) + '\n'


def main(argv=None):
    a = parser().parse_args(argv)
    E, G = a.seed_epochs
    ref_name = f'seed recipe, {a.seed_n_train} images, {E} + {G} epochs'
    rows = {ref_name: run(a, f'seed_{a.seed_n_train}_{E}_{G}', 'seed',
                          ['--seed-n-train', str(a.seed_n_train), '--epochs', str(E), '--gan-epochs', str(G)])}
    found = None
    for rung in a.ladder:
        n, e, c = (int(v) for v in rung.split(':'))
        name = f'{a.label}, {n} images, {e} + {c} epochs'
        tag = '' if a.label == 'semantic recipe' else '_' + re.sub(r'[^A-Za-z0-9.]+', '_', a.label).strip('_')
        rows[name] = run(a, f'semantic_{n}_{e}_{c}{tag}', 'semantic', shlex.split(a.recipe_args) +
                         ['--n-train', str(n), '--sem-epochs', str(e), '--colour-epochs', str(c)])
        if all(at_least_as_good(rows[name], rows[ref_name]).values()): found = name; break
    machine = f"{cpu_description()}; fp32"
    verdict = (f"Time to quality: the {found} matches the seed recipe on every column in "
               f"{rows[found]['wall_s'] / rows[ref_name]['wall_s']:.2f}× its wall time "
               f"({rows[found]['cpu_s'] / rows[ref_name]['cpu_s']:.2f}× its CPU time)." if found else
               "No rung of the ladder matched the seed recipe on every column (✗ marks the columns it missed).")
    md = (f"**Time to quality on CIFAR-10 ({a.n_valid or 5000} test images, seed {a.seed}); machine: {machine}**\n\n"
          + table(rows, ref_name) + '\n' + verdict + '\n\n'
          "Clocks: wall = the whole training (fit) as a user waits for it, validating on every test image after each "
          "epoch as fastai does; training only = wall minus those validation passes (one pass timed after training, "
          "times the epochs); CPU = this process's CPU seconds, hardly moved by other work on the machine.\n")
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (Path(a.out) / 'time_to_quality.md').write_text(md)
    print(md)
    return dict(rows=rows, found=found)


if __name__ == '__main__': main()

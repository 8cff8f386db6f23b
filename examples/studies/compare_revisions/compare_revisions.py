"""Before/after: the same bench/run.py measurements for two checkouts of the project, interleaved in one run on one
machine (round 1 before, round 1 after, round 2 before, ...), so a slow drift of a shared machine hits both alike.
Each measurement runs in its own process with that checkout first on the import path.

    git worktree add /tmp/before <rev>
    python bench/compare_revisions.py --before /tmp/before --after . --only ours_l1 ours_gan data_ours
"""
import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

CODE = ("import json, sys; sys.path.insert(0, {bench!r}); import run; "
        "print(json.dumps(run.worker({name!r}, run.CFGS[{cfg!r}], {batches}, {repeats})))")


def measure(root, name, cfg, batches, repeats):
    root = Path(root).resolve()
    code = CODE.format(bench=str(root / 'bench'), name=name, cfg=cfg, batches=batches, repeats=repeats)
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=root,
                         env={'PYTHONPATH': str(root), 'PATH': '/usr/bin:/bin'})
    if out.returncode: raise RuntimeError(f"{name} in {root} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--before', required=True); p.add_argument('--after', default='.')
    p.add_argument('--only', nargs='+', default=['ours_l1', 'ours_gan', 'data_ours'])
    p.add_argument('--cfg', default='cifar'); p.add_argument('--rounds', type=int, default=2)
    p.add_argument('--batches', type=int, default=3); p.add_argument('--repeats', type=int, default=5)
    a = p.parse_args(argv)
    sys.path.insert(0, str(Path(a.after).resolve()))
    from colourgan_fastai.precision import cpu_description
    print(f"CPU: {cpu_description()}; {a.rounds} interleaved rounds of {a.repeats} runs after a warm-up, "
          f"{a.batches} batches per run; median of all runs")
    runs = {(v, n): [] for v in ('before', 'after') for n in a.only}
    for rnd in range(a.rounds):
        for name in a.only:
            for v in ('before', 'after'):
                r = measure(getattr(a, v), name, a.cfg, a.batches, a.repeats)
                runs[(v, name)] += r['runs']
                print(f"  round {rnd + 1} {name:10s} {v:6s} median {statistics.median(r['runs']):.1f}", flush=True)
    print('\n| measurement | before | after | after / before |\n|---|---|---|---|')
    for name in a.only:
        b, f = statistics.median(runs[('before', name)]), statistics.median(runs[('after', name)])
        unit = 'batches/s' if name.startswith('data') else 'img/s'
        print(f"| {name} ({unit}) | {b:.1f} | {f:.1f} | {f / b:.2f}× |")


if __name__ == '__main__': main()

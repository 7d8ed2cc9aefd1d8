"""Bulk benchmark (issue 16): many MNIST-sized PNG files from a folder to JSONL through `digit_predict`, as a person runs it.

Prints a table and writes it to bench/results/bulk_bench.md. Run: `python bench/bulk_bench.py` (100,000 files, written
once into `--folder`; about 15 minutes on 2 cores; `--n 20000` for a quicker look, `--kinds default,dask` for the Dask
row alone). Figures, not pass/fail: the
targets of issue 16 are printed beside them. The runs are interleaved (each kind once per round, `--rounds` rounds)
so that a machine shared with other work slows them alike; the median of the rounds is reported.

- end to end: `digit_predict FOLDER --out out.jsonl` (the default reading, and `--digit`), files/s from start to exit,
  and the peak memory of the CLI with its worker processes (their resident sets summed, sampled every 0.1 s);
- the same through a 2-worker Dask LocalCluster (`--workers 2`) beside the default (a process per core);
- each of these three also run with the code at `--baseline` (its `digit_predict` importing the exported package;
  by default where this branch left main, `git merge-base HEAD main`, or `HEAD~` when run on main itself),
  interleaved with this checkout's runs, and shown beside them;
- killed (SIGKILL) at about half and resumed with `--resume`: every input once in the final output, none missing;
- `predict_many` on MNIST test digits in memory, digits/s, beside the same call of the code at `--baseline`
  (a git revision, exported to a temporary folder and imported from there)."""
from __future__ import annotations
import json, os, platform, resource, signal, statistics, subprocess, sys, tempfile, textwrap, time
from pathlib import Path
import numpy as np
from fastcore.script import call_parse

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

def make_folder(folder: Path, n: int):
    "`n` MNIST digits (training then test, cycled) as 28x28 PNG files, dark ink on white, 1,000 to a subfolder."
    import cv2
    from digit_nbdev.data import load_mnist
    done = folder/'.complete'
    if done.exists() and int(done.read_text()) == n: return
    (xt, _), (x, _) = load_mnist()
    digits = np.concatenate([xt, x])
    for k in range(0, n, 1000):
        sub = folder/f'{k // 1000:04d}'; sub.mkdir(parents=True, exist_ok=True)
        for i in range(k, min(n, k + 1000)): cv2.imwrite(str(sub/f'{i:06d}.png'), 255 - digits[i % len(digits)])
    done.write_text(str(n))

def tree_rss(pid: int, cpu: dict | None = None) -> int:
    "Resident bytes of process `pid` and all its descendants; each one's CPU seconds so far put in `cpu` (by pid)."
    import psutil
    try: p = psutil.Process(pid); procs = [p] + p.children(recursive=True)
    except psutil.NoSuchProcess: return 0
    total = 0
    for q in procs:
        try:
            with q.oneshot():
                total += q.memory_info().rss
                if cpu is not None: t = q.cpu_times(); cpu[q.pid] = t.user + t.system
        except psutil.NoSuchProcess: pass
    return total

def cli(args: list, out: Path, kill_at: int | None = None, pythonpath: str | None = None, env: dict | None = None) -> dict:
    "Run digit_predict with `args` (importing the package from `pythonpath`, if given; `env` added to the environment); wall seconds, peak memory and CPU seconds of its process tree, exit code; SIGKILL it once `out` has `kill_at` lines."
    t0, cpu0, seen = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN), {}
    env = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2', **({'PYTHONPATH': pythonpath} if pythonpath else {}), **(env or {})}
    p = subprocess.Popen([str(BIN/'digit_predict'), *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         start_new_session=True, env=env, cwd=pythonpath)
    peak, killed = 0, False
    while p.poll() is None:
        peak = max(peak, tree_rss(p.pid, seen))
        if kill_at and out.exists() and out.stat().st_size and sum(1 for _ in open(out, 'rb')) >= kill_at:
            os.killpg(p.pid, signal.SIGKILL); killed = True
            break
        time.sleep(0.1)
    p.wait()
    if killed:
        try: os.killpg(p.pid, signal.SIGKILL)  # (the worker processes it started, if any are left)
        except ProcessLookupError: pass
    err = p.stderr.read().decode()[-500:]
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # (its worker processes too, once it has waited for them)
    waited = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime
    return dict(seconds=time.perf_counter() - t0, peak_mb=peak / 2**20, code=p.returncode, stderr=err,
                cpu_seconds=max(waited, sum(seen.values())))  # (sampled: processes it does not wait for, as a fork server's, count too)

PREDICT_MANY = textwrap.dedent('''
    import json, resource, sys, time
    from digit_nbdev.data import load_mnist
    from digit_nbdev.predict import predict_many
    (_, _), (x, y) = load_mnist()
    x = list(x)
    predict_many(x[:500])
    cpu = lambda: sum(r.ru_utime + r.ru_stime for r in map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)))
    t0, c0 = time.perf_counter(), cpu(); preds = predict_many(x); dt, dc = time.perf_counter() - t0, cpu() - c0  # (the pool's processes: children)
    print(json.dumps(dict(rate=len(x) / dt, cpu_us=dc / len(x) * 1e6, right=sum(p.digit == t for p, t in zip(preds, y)) / len(x))))''')

def predict_many_rate(pythonpath: str) -> dict:
    r = subprocess.run([sys.executable, '-c', PREDICT_MANY], capture_output=True, text=True, timeout=900, cwd=pythonpath,  # (`-c` imports from the working directory first)
                       env={**os.environ, 'PYTHONPATH': pythonpath, 'TF_CPP_MIN_LOG_LEVEL': '2'})
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.splitlines()[-1])

def exported(rev: str, into: Path) -> str:
    "The package at git revision `rev`, exported into `into`: a PYTHONPATH that imports it."
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(['git', '-C', str(ROOT), 'archive', rev, 'digit_nbdev'], capture_output=True, check=True).stdout
    subprocess.run(['tar', '-x', '-C', str(into)], input=archive, check=True)
    return str(into)

def default_baseline() -> str:
    "What a change is measured against by default: where this branch left main (`git merge-base HEAD main`), or `HEAD~` on main itself (or where there is no branch main)."
    git = lambda *a: subprocess.run(['git', '-C', str(ROOT), *a], capture_output=True, text=True).stdout.strip()
    head, base = git('rev-parse', 'HEAD'), git('merge-base', 'HEAD', 'main')
    return git('rev-parse', '--short', base if base and base != head else 'HEAD~')

def check_output(out: Path, names: set) -> dict:
    "How many inputs appear in the output file more than once, and how many are missing."
    seen = [json.loads(l)['file'] for l in open(out)]
    return dict(twice=len(seen) - len(set(seen)), missing=len(names - set(seen)), extra=len(set(seen) - names))

@call_parse
def main(n: int = 100_000,  # files in the folder
         folder: str = None,  # where the files are written once (default: a folder in the temporary directory)
         rounds: int = 2,  # rounds of the interleaved runs
         baseline: str = None,  # the git revision (or a folder holding its digit_nbdev) measured beside this checkout (default: `default_baseline()`)
         only_predict_many: bool = False,  # only the predict_many rows (a quick A/B of the model path)
         kinds: str = 'default,digit,dask,resume,predict_many',  # what to measure (a quicker A/B of the Dask path: 'default,dask')
         out: str = str(ROOT/'bench'/'results'/'bulk_bench.md')):
    kinds = ['predict_many'] if only_predict_many else kinds.split(',')
    folder = Path(folder or Path(tempfile.gettempdir())/f'digit_nbdev_bulk_{n}')
    if kinds != ['predict_many']:  # (predict_many reads MNIST in memory: no files to write)
        t0 = time.time(); make_folder(folder, n); print(f"{n:,} files in {folder} ({time.time() - t0:.0f} s)", flush=True)
        names = {str(p) for p in folder.rglob('*.png')}
    work = Path(tempfile.mkdtemp())
    baseline = baseline or default_baseline()
    base = baseline if Path(baseline).is_dir() else exported(baseline, work/'baseline')  # (a folder: a package exported already)
    runs = dict(default=[folder], digit=[folder, '--digit'], dask=[folder, '--workers', 2])
    got = {k: [] for k in [*runs, *(f'{k}_baseline' for k in runs), 'predict_many', 'predict_many_baseline']}
    runs = {k: v for k, v in runs.items() if k in kinds}
    for r in range(rounds):
        for kind, args in runs.items():
            sides = [(kind, None), (f'{kind}_baseline', base)]
            for side, path in (sides if r % 2 == 0 else sides[::-1]):  # (the order alternates: neither side always first)
                o = work/f'{side}.jsonl'; o.unlink(missing_ok=True)
                res = cli([*args, '--out', o], o, pythonpath=path)
                res.update(rate=n / res['seconds'], cpu_us=res['cpu_seconds'] / n * 1e6, lines=sum(1 for _ in open(o)) if o.exists() else 0)
                got[side].append(res); print(side, {k: v for k, v in res.items() if k != 'stderr'}, res['stderr'][-200:], flush=True)
        pm_sides = (('predict_many_baseline', base), ('predict_many', str(ROOT)))
        for kind, path in (pm_sides if r % 2 == 0 else pm_sides[::-1]) if 'predict_many' in kinds else ():  # (the order alternates here too)
            got[kind].append(predict_many_rate(path)); print(kind, got[kind][-1], flush=True)
    med = lambda kind, key: statistics.median(r[key] for r in got[kind])
    span = lambda kind, key: f"{min(r[key] for r in got[kind]):,.0f}-{max(r[key] for r in got[kind]):,.0f}"
    ratio = lambda key: statistics.median(a[key] / b[key] for a, b in zip(got['predict_many'], got['predict_many_baseline']))  # (this checkout over the baseline, round by round)
    pm = lambda: f"| `predict_many`, 10,000 MNIST test digits in memory | {med('predict_many', 'rate'):,.0f} digits/s ({span('predict_many', 'rate')}; {got['predict_many'][0]['right']:.2%} right) vs {med('predict_many_baseline', 'rate'):,.0f}/s at {baseline} ({span('predict_many_baseline', 'rate')}; {got['predict_many_baseline'][0]['right']:.2%} right); CPU {med('predict_many', 'cpu_us'):,.0f} us a digit vs {med('predict_many_baseline', 'cpu_us'):,.0f}; each round's ratio to the baseline, median: rate {ratio('rate'):.3f}, CPU {ratio('cpu_us'):.3f} | >= 10,000/s |"
    if only_predict_many:
        print(pm()); Path(out).write_text(pm() + '\n'); return
    if 'resume' in kinds:  # killed at about half, then resumed
        o = work/'resumed.jsonl'; o.unlink(missing_ok=True)
        first = cli([folder, '--out', o], o, kill_at=n // 2)
        at_kill = sum(1 for _ in open(o))
        second = cli([folder, '--out', o, '--resume'], o)
        resumed = dict(killed_at=at_kill, code=second['code'], seconds=first['seconds'] + second['seconds'], **check_output(o, names))
        print('resumed', resumed, flush=True)

    ok = lambda kind: all(r['code'] in (0, 1) and r['lines'] == n for r in got[kind])
    paired = lambda side: statistics.median(d['rate'] / f['rate'] for d, f in zip(got['dask' + side], got['default' + side])) - 1  # (each round's Dask run against its default run)
    was = lambda kind: (f" vs {med(kind + '_baseline', 'rate'):,.0f} at {baseline} ({span(kind + '_baseline', 'rate')}){'' if ok(kind + '_baseline') else ' (INCOMPLETE)'}; "
                        f"CPU {med(kind, 'cpu_us'):,.0f} us a file vs {med(kind + '_baseline', 'cpu_us'):,.0f}")
    rows = {
        'default': lambda: f"| {n:,} MNIST-sized PNGs from a folder to JSONL, default reading (a process per core) | {med('default', 'rate'):,.0f} files/s ({span('default', 'rate')}){was('default')}; peak RSS {med('default', 'peak_mb'):,.0f} MB{'' if ok('default') else ' (INCOMPLETE)'} | >= 4,000 files/s, <= 1 GB |",
        'digit': lambda: f"| the same with `--digit` (one digit per file, no number reading) | {med('digit', 'rate'):,.0f} files/s ({span('digit', 'rate')}){was('digit')}; peak RSS {med('digit', 'peak_mb'):,.0f} MB{'' if ok('digit') else ' (INCOMPLETE)'} | |",
        'dask': lambda: f"| the same through a 2-worker Dask LocalCluster (`--workers 2`, start-up included) | {med('dask', 'rate'):,.0f} files/s ({span('dask', 'rate')}), {paired(''):+.1%} vs the default (median of the rounds' ratios){was('dask')} ({paired('_baseline'):+.1%} there); peak RSS {med('dask', 'peak_mb'):,.0f} MB{'' if ok('dask') else ' (INCOMPLETE)'} | within 15% |",
        'resume': lambda: f"| killed (SIGKILL) at {resumed['killed_at']:,} of {n:,} records, then `--resume` | {resumed['twice']} inputs twice, {resumed['missing']} missing, {resumed['extra']} foreign; {resumed['seconds']:.0f} s in all | none twice, none missing |",
        'predict_many': pm}
    rows = [r() for k, r in rows.items() if k in kinds and (k != 'dask' or 'default' in kinds)]
    load = os.getloadavg()[0]
    table = '\n'.join([f"Machine: {platform.machine()}, {os.cpu_count()} cores; Python {platform.python_version()}; {time.strftime('%Y-%m-%d %H:%M')}; load average {load:.1f} at the end{' (shared with other work: figures are slowed, the A/B ratios are the measure)' if load > 1.5 * (os.cpu_count() or 1) else ''}",
                       f"Runs interleaved, {rounds} rounds (medians, range in brackets).", '',
                       '| measure | digit_nbdev | target |', '|---|---|---|', *rows])
    print('\n' + table)
    Path(out).write_text(table + '\n')

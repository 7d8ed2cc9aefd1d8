"""Speed A/B of two git refs of digit_nbdev, interleaved: warm `predict`, `predict_many` batch, cold start of the CLI.

`python bench/ab_speed.py A B [--rounds 5] [--out bench/results/ab_speed.md]` makes a temporary `git worktree` of each
ref (removed afterwards), and runs rounds A, B, B, A, A, B, ... of three measures, each side importing its own tree
(PYTHONPATH and working directory = its worktree, so its own code and its own shipped model):

- **warm predict**: one process per side and round; every photo-like file (the photo kinds of the robustness set,
  made once by the current tree and read by both sides) predicted once to warm up, then `--repeat` more times:
  the median ms per file;
- **batch**: `predict_many` on `--batch` MNIST test digits (after a warm-up batch of 256), `--repeat` times: the median
  digits per second;
- **cold start**: the ref's own `digit_predict` console script (its entry point read from the ref's settings.ini,
  run as the script wrapper would) on one photo, as a fresh process: wall seconds.

Interleaving spreads whatever else the machine is doing over both sides; the order alternates so that neither side
always runs first. Figures, not pass/fail: medians, the spread (min-max over rounds) and B/A per round."""
from __future__ import annotations
import configparser, json, os, shutil, statistics, subprocess, sys, tempfile, time
from pathlib import Path
from fastcore.script import call_parse

REPO = Path(__file__).resolve().parent.parent

# Runs inside a side's worktree: `predict`/`predict_many` through `digit_nbdev.inference`, the one import path every
# ref has had (a thin re-export since the stages got modules of their own).
WORKER = r'''
import json, statistics, sys, time
from pathlib import Path
mode, arg, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
from digit_nbdev.inference import predict, predict_many
if mode == 'warm':
    paths = sorted(Path(arg).glob('*.*'))
    for p in paths: predict(p)
    times = []
    for _ in range(repeat):
        for p in paths:
            t0 = time.perf_counter(); predict(p); times.append((time.perf_counter() - t0) * 1e3)
    print(json.dumps(dict(value=statistics.median(times), n=len(times))))
else:
    from digit_nbdev.data import load_mnist
    (_, _), (x, _) = load_mnist()
    x = list(x[:int(arg)])
    predict_many(x[:256])
    rates = []
    for _ in range(repeat):
        t0 = time.perf_counter(); predict_many(x); rates.append(len(x) / (time.perf_counter() - t0))
    print(json.dumps(dict(value=statistics.median(rates), n=len(x))))
'''

MEASURES = {'warm': ('warm predict, photo-like files', 'ms per file', False),
            'batch': ('predict_many, MNIST digits', 'digits/s', True),
            'cold': ('cold start, `digit_predict photo.jpg`', 's', False)}

def side_env(tree: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree), TF_CPP_MIN_LOG_LEVEL='2', TF_ENABLE_ONEDNN_OPTS='0')
    env.pop('PYTHONSTARTUP', None)
    return env

def cli_entry(tree: Path) -> tuple[str, str]:
    "The module and function of the ref's `digit_predict` console script, from its settings.ini."
    cfg = configparser.ConfigParser(); cfg.read(tree/'settings.ini')
    for line in cfg['DEFAULT']['console_scripts'].split('\n'):
        name, _, target = line.strip().partition('=')
        if name.strip() == 'digit_predict': return tuple(target.strip().split(':'))
    raise SystemExit(f"no digit_predict console script in {tree/'settings.ini'}")

def worker(tree: Path, mode: str, arg: str, repeat: int) -> float:
    r = subprocess.run([sys.executable, '-c', WORKER, mode, arg, str(repeat)], cwd=tree, env=side_env(tree),
                       capture_output=True, text=True)
    if r.returncode != 0: raise SystemExit(f"{mode} in {tree} failed:\n{r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])['value']

def cold(tree: Path, photo: Path) -> float:
    module, func = cli_entry(tree)
    code = f"import sys; from {module} import {func}; sys.argv = ['digit_predict', {str(photo)!r}]; sys.exit({func}())"
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, '-c', code], cwd=tree, env=side_env(tree), capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if r.returncode != 0: raise SystemExit(f"digit_predict in {tree} failed:\n{r.stderr[-2000:]}")
    return dt

def photo_files(folder: Path, n_per_kind: int) -> list[Path]:
    "The photo kinds of the robustness set (seed 7) as files, made by the tree this script belongs to."
    code = f'''
import sys
from pathlib import Path
try: from digit_nbdev.robustness_set import robustness_set
except ImportError: from digit_nbdev.photos import robustness_set
from digit_nbdev.photos import PHOTO_KINDS
for s in robustness_set({n_per_kind}, seed=7, kinds=PHOTO_KINDS): (Path({str(folder)!r})/s.filename).write_bytes(s.data)
'''
    subprocess.run([sys.executable, '-c', code], cwd=REPO, env=side_env(REPO), check=True)
    return sorted(folder.glob('*.*'))

def spread(xs) -> str: return f"{min(xs):.3g}-{max(xs):.3g}"

def best(xs, higher_better: bool) -> float: return max(xs) if higher_better else min(xs)

def table(runs: dict) -> str:
    "Medians, spread (min-max over rounds), the best round of each side (the least disturbed by other work) and B/A."
    out = ["| measure | unit | A median | A spread | B median | B spread | B/A median of rounds (spread) | A best | B best | B/A of bests |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for m, (what, unit, higher_better) in MEASURES.items():
        xa, xb = runs[m]['A'], runs[m]['B']
        ratios = [vb / va for va, vb in zip(xa, xb)]
        ba, bb = best(xa, higher_better), best(xb, higher_better)
        out.append(f"| {what} | {unit} | {statistics.median(xa):.3g} | {spread(xa)} | {statistics.median(xb):.3g} | "
                   f"{spread(xb)} | {statistics.median(ratios):.3f} ({spread(ratios)}) | {ba:.3g} | {bb:.3g} | {bb / ba:.3f} |")
    return '\n'.join(out)

def rounds_table(runs: dict) -> str:
    "Every round's figures, in the order they were taken."
    n = len(runs['warm']['A'])
    out = ['| round | order | ' + ' | '.join(f'{m} A | {m} B' for m in MEASURES) + ' |', '|---' * (2 + 2 * len(MEASURES)) + '|']
    for r in range(n):
        out.append(f"| {r + 1} | {'AB' if r % 2 == 0 else 'BA'} | " + ' | '.join(f"{runs[m]['A'][r]:.3g} | {runs[m]['B'][r]:.3g}" for m in MEASURES) + ' |')
    return '\n'.join(out)

@call_parse
def main(a: str,  # the baseline ref (e.g. b9fda05^)
         b: str,  # the ref compared with it (e.g. 325225f)
         rounds: int = 7,  # A/B rounds; each runs every measure once per side
         n_per_kind: int = 3,  # photo-like files per photo kind (11 kinds)
         repeat: int = 3,  # timed passes over the files per warm-predict process, timed batches per batch process
         batch: int = 5_000,  # MNIST test digits per predict_many batch
         cold_runs: int = 3,  # cold starts per side and round
         out: str = 'bench/results/ab_speed.md'):  # where the table goes (relative to the repository)
    "Interleaved speed A/B of two refs, each in a temporary worktree."
    sha = {r: subprocess.run(['git', 'rev-parse', '--short', r], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip() for r in (a, b)}
    tmp = Path(tempfile.mkdtemp(prefix='ab_speed_'))
    trees = {'A': tmp/'A', 'B': tmp/'B'}
    try:
        for side, ref in zip('AB', (a, b)):
            subprocess.run(['git', 'worktree', 'add', '--detach', str(trees[side]), ref], cwd=REPO, check=True, capture_output=True)
        files = tmp/'photos'; files.mkdir()
        paths = photo_files(files, n_per_kind)
        photo = next(p for p in paths if p.name.startswith('paper_'))
        print(f"A = {a} ({sha[a]}), B = {b} ({sha[b]}); {len(paths)} photo-like files, {rounds} rounds", flush=True)
        runs = {m: {'A': [], 'B': []} for m in MEASURES}
        t0 = time.time()
        for r in range(rounds):
            for side in ('AB' if r % 2 == 0 else 'BA'):
                tree = trees[side]
                runs['warm'][side].append(worker(tree, 'warm', str(files), repeat))
                runs['batch'][side].append(worker(tree, 'batch', str(batch), repeat))
                runs['cold'][side].append(statistics.median(cold(tree, photo) for _ in range(cold_runs)))
            print(f"round {r + 1}/{rounds} ({time.time() - t0:.0f} s): " + '; '.join(
                f"{m} A {runs[m]['A'][-1]:.3g} B {runs[m]['B'][-1]:.3g}" for m in MEASURES), flush=True)
    finally:
        for tree in trees.values():
            subprocess.run(['git', 'worktree', 'remove', '--force', str(tree)], cwd=REPO, capture_output=True)
        subprocess.run(['git', 'worktree', 'prune'], cwd=REPO, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    text = table(runs)
    print(text)
    head = (f"# Speed A/B: A = `{a}` ({sha[a]}), B = `{b}` ({sha[b]})\n\n"
            f"`python bench/ab_speed.py {a} {b} --rounds {rounds}`: {rounds} interleaved rounds (A,B then B,A, ...), each side in its own "
            f"temporary worktree. Warm predict: {len(paths)} photo-like files (robustness set seed 7, photo kinds), median over "
            f"{repeat} passes per process; batch: predict_many on {batch:,} MNIST test digits (median of {repeat} per process); cold start: the ref's `digit_predict` "
            f"entry point on one photo as a new process (median of {cold_runs} per round). Spread = min-max over rounds.\n\n")
    (REPO/out).parent.mkdir(parents=True, exist_ok=True)
    (REPO/out).write_text(head + text + '\n\nEvery round (higher is better for digits/s, lower for the rest):\n\n' + rounds_table(runs) + '\n')
    print(f"written to {out}")

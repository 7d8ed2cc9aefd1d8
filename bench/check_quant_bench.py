"""Quantisation benchmark of the digit check (issue 16): both verifiers as int8 LiteRT models, post-training, beside the float ones.

Each shipped verifier (`digit_check.tflite`, `digit_check_hard.tflite`) is converted by the package's
`digit_check_training.quantise_check` (rebuilt in Keras from its own weights, checked against the float file, then
TFLiteConverter's int8 quantisation), calibrated on `calibration_images(--calibration)`: as many digits and marks of the
verifiers' own *training* data (`training_jobs(n, 12, TRAIN_DIGITS)`: the first chunks of the set both were trained on).
The convolutions run in int8; the two dense layers and the sigmoid stay float (`QuantizationDebugger` deny-list):
an int8 sigmoid gives p(digit) in steps of 1/256, so every p below 0.0039 would be 0, and `DIGIT_CHECK` is 0.003.
Then, A/B in one run (float vs int8, `CHECK_RUNTIME` '' vs '_int8'): each verifier's CPU time per image on one
thread; `predict_many`'s CPU per MNIST test digit; p(digit) on MNIST test; answers on MNIST test, the robustness set
(200 per kind, seed 2026), the marks table of `bench/inference_bench.py` and the real images (`$DIGIT_NBDEV_REAL`,
evaluation only). The rule of issue 16: ship as the default only if marks answered 'no digit' drop by <= 0.2 points,
no real single digit is answered 'no digit', no real photo of a digit is lost and MNIST test does not drop by > 0.05.
Needs `[train]` (TensorFlow). Run: `python bench/check_quant_bench.py` (~15 minutes on 2 shared cores); the models
and cards are written to `--out` (the package's models), the table to bench/results/check_quant_bench.md."""
from __future__ import annotations
import os, platform, resource, time
from pathlib import Path
import numpy as np
from fastcore.script import call_parse

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
ROOT = Path(__file__).resolve().parents[1]
NAMES = ('digit_check', 'digit_check_hard')
RULE = dict(marks=0.2, mnist=0.05)  # the most each may drop, in points (and: 0 real singles 'no digit', real photos all right)

def model_cpu_us(paths: dict, x: np.ndarray, reps: int = 5) -> dict:
    "Each model's CPU time per image (us) on one thread, interleaved, median of `reps`."
    from digit_nbdev.runtime import LiteRTRunner
    runners = {k: LiteRTRunner(p, outputs=1, num_threads=1) for k, p in paths.items()}
    got = {k: [] for k in paths}
    for _ in range(reps):
        for k, r in runners.items():
            r(x[:64]); t = time.process_time(); r(x); got[k].append((time.process_time() - t) / len(x) * 1e6)
    return {k: float(np.median(v)) for k, v in got.items()}

def use(runtime: str):
    "Make `runtime` the verifiers' copy in this process (and the worker processes it forks)."
    from digit_nbdev import digit_check
    digit_check.CHECK_RUNTIME = runtime
    digit_check.digit_checker.cache_clear()
    return digit_check.digit_checker()

def many_cpu_us(x: list, runtime: str) -> tuple:
    "`predict_many` on `x` with the verifiers' `runtime` copy: the predictions and the CPU time per digit of this process and its workers (us)."
    from digit_nbdev.predict import predict_many
    use(runtime)
    r0, c0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    preds = predict_many(x)
    r1, c1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = sum(b.ru_utime + b.ru_stime - a.ru_utime - a.ru_stime for a, b in ((r0, r1), (c0, c1)))
    return preds, cpu / len(x) * 1e6

@call_parse
def main(out: str = str(ROOT/'digit_nbdev'/'models'),  # where the int8 verifiers (and their cards) are written
         calibration: int = 500,  # digits (and as many marks) of the verifiers' training data to calibrate on
         rounds: int = 2,  # interleaved rounds of predict_many on MNIST test, float then int8, for its CPU per digit
         n_marks: int = 12,  # marks of each kind in each domain, as bench/inference_bench.py
         results: str = str(ROOT/'bench'/'results'/'check_quant_bench.md')):
    import sys; sys.path.insert(0, str(ROOT/'bench'))
    from inference_bench import marks_table
    from digit_nbdev.data import load_mnist
    from digit_nbdev.digit_check import DIGIT_CHECK, INT8_COPY as SUFFIX, DigitCheck
    from digit_nbdev.model import shipped_model_path
    from digit_nbdev.robustness import _ours, real_dir, real_set, NUMBER_GROUPS
    from digit_nbdev.robustness_set import robustness_set
    from digit_nbdev.digit_check_training import calibration_images, quantise_check
    t0 = time.time()
    cal = calibration_images(calibration)
    int8 = {n: quantise_check(shipped_model_path('.tflite', n), cal, out, command='python bench/check_quant_bench.py') for n in NAMES}
    _, (xt, yt) = load_mnist()
    seen = np.stack([p.processed for p in many_cpu_us(list(xt), '')[0]]).astype(np.float32)
    cpu = {n: model_cpu_us({'float': shipped_model_path('.tflite', n), 'int8': int8[n]}, seen[:2048, ..., None]) for n in NAMES}
    path = shipped_model_path('.tflite', 'digit_check')
    checks = {k: DigitCheck(path, num_threads=1, runtime=r) for k, r in (('float', ''), ('int8', SUFFIX))}
    for c in checks.values(): c.threshold = DIGIT_CHECK
    both = {k: [c(seen[i:i + 64]) for i in range(0, len(seen), 64)] for k, c in checks.items()}  # (in predict's chunks)
    check_cpu = {k: [] for k in checks}
    for _ in range(5):  # (interleaved; median)
        for k, c in checks.items(): t = time.process_time(); c(seen); check_cpu[k].append((time.process_time() - t) / len(seen) * 1e6)
    check_cpu = {k: float(np.median(v)) for k, v in check_cpu.items()}
    p = {k: np.concatenate(v) for k, v in both.items()}
    lo = lambda q: np.log(np.clip(q, 1e-7, 1 - 1e-7) / (1 - np.clip(q, 1e-7, 1 - 1e-7)))
    near = (p['float'] < 0.05)
    many = {'float': [], 'int8': []}; acc, preds = {}, {}
    for _ in range(rounds):
        for k, r in (('float', ''), ('int8', SUFFIX)):
            preds[k], us = many_cpu_us(list(xt), r); many[k].append(us)
            acc[k] = dict(mnist=100 * float(np.mean([q.digit == t for q, t in zip(preds[k], yt)])))
    same = sum(a.status == b.status and a.digit == b.digit and a.low_confidence == b.low_confidence for a, b in zip(preds['float'], preds['int8']))
    robust = robustness_set(200, seed=2026)
    real = real_set() if real_dir() else []
    from inference_bench import mark_uploads
    looks = [x for x in [s.data for s in robust if s.group not in NUMBER_GROUPS] + [m[2] for m in mark_uploads(n_marks)] if isinstance(x, (bytes, str, Path, np.ndarray))]  # (files and arrays)
    marks, pd = {}, {}
    for k, r in (('float', ''), ('int8', SUFFIX)):
        use(r)
        pd[k] = np.array([q.p_digit for q in many_cpu_us(looks, r)[0]])
        marks[k] = marks_table(n_marks)
        kept = int(marks[k][2].split('|')[1].split()[0])  # (the table's count of marks, and its share to 0.1%: one mark is 0.14 points, so the count is exact)
        acc[k]['marks_kept'], acc[k]['marks_nod'] = kept, round(float(marks[k][2].split('|')[2].strip().rstrip('%')) * kept / 100)
        acc[k]['marks'] = 100 * acc[k]['marks_nod'] / kept
        acc[k]['robust'] = 100 * float(np.mean([o == s.label for s, (o, _) in zip(robust, _ours(robust, None))]))
        if real:
            ours = _ours(real, None)
            singles = [(s, o) for s, (o, _) in zip(real, ours) if s.group not in NUMBER_GROUPS]
            acc[k]['real_no_digit'] = sum(o is None for _, o in singles); acc[k]['real_singles'] = len(singles)
            photos = [(s, o) for s, (o, _) in zip(real, ours) if s.filename.startswith('photos/') and s.group not in NUMBER_GROUPS]  # (single digits)
            acc[k]['real'] = 100 * float(np.mean([o == s.label for s, (o, _) in zip(real, ours)]))
            acc[k]['real_photos'] = sum(o == s.label for s, o in photos); acc[k]['real_photos_n'] = len(photos)
    use('')
    f, q = acc['float'], acc['int8']
    ship = (f['marks'] - q['marks'] <= RULE['marks'] and f['mnist'] - q['mnist'] <= RULE['mnist']
            and (not real or (q['real_no_digit'] == 0 and q['real_photos'] >= f['real_photos'])))
    d = np.abs(lo(p['float']) - lo(p['int8']))
    rows = [f"| {n}: model CPU per image, one thread (median of 5, interleaved) | {cpu[n]['float']:.1f} us | {cpu[n]['int8']:.1f} us ({cpu[n]['float'] / cpu[n]['int8']:.1f}x) | |" for n in NAMES]
    rows += [f"| {n}: file size | {shipped_model_path('.tflite', n).stat().st_size / 1e3:.0f} kB | {int8[n].stat().st_size / 1e3:.0f} kB | |" for n in NAMES]
    rows += [f"| `DigitCheck` (both verifiers, as predict asks them) CPU per MNIST test digit, one thread | {check_cpu['float']:.1f} us | {check_cpu['int8']:.1f} us | |",
             f"| `predict_many` CPU per MNIST test digit (all processes; {rounds} interleaved rounds: {', '.join(f'{a:.0f}/{b:.0f}' for a, b in zip(many['float'], many['int8']))}) | {np.median(many['float']):.0f} us | {np.median(many['int8']):.0f} us | |",
             f"| p(digit) on MNIST test (10,000 as predict sees them): largest difference | | {np.abs(p['float'] - p['int8']).max():.4f} | |",
             f"| ... log-odds difference where p < 0.05 ({near.sum()} digits): median, largest | | {np.median(d[near]) if near.any() else 0:.3f}, {d[near].max() if near.any() else 0:.3f} | |",
             f"| ... below DIGIT_CHECK ({DIGIT_CHECK}) | {(p['float'] < DIGIT_CHECK).sum()} | {(p['int8'] < DIGIT_CHECK).sum()} ({((p['float'] < DIGIT_CHECK) != (p['int8'] < DIGIT_CHECK)).sum()} changed) | |",
             f"| p(digit) of the robustness set's single images and the marks ({len(looks):,}, as `predict_many` answers them): largest difference; 'no digit' answers changed | | {np.abs(pd['float'] - pd['int8']).max():.4f}; {((pd['float'] < DIGIT_CHECK) != (pd['int8'] < DIGIT_CHECK)).sum()} | |",
             f"| MNIST test through `predict_many` | {f['mnist']:.2f}% | {q['mnist']:.2f}% ({same:,} of 10,000 answers identical: status, digit, flag) | drop <= {RULE['mnist']} |",
             f"| marks answered 'no digit' (`inference_bench.marks_table`, seed 2026) | {f['marks']:.2f}% ({f['marks_nod']} of {f['marks_kept']}) | {q['marks']:.2f}% ({q['marks_nod']} of {q['marks_kept']}; {q['marks'] - f['marks']:+.2f} points) | drop <= {RULE['marks']} |",
             f"| robustness set ({len(robust):,}: 200 per kind, seed 2026) | {f['robust']:.2f}% | {q['robust']:.2f}% | |"]
    if real:
        rows += [f"| real single digits answered 'no digit' (of {f['real_singles']:,}; evaluation only) | {f['real_no_digit']} | {q['real_no_digit']} | 0 |",
                 f"| real photos of single digits right | {f['real_photos']}/{f['real_photos_n']} | {q['real_photos']}/{q['real_photos_n']} | no fewer |",
                 f"| all real images right ({len(real):,}) | {f['real']:.2f}% | {q['real']:.2f}% | |"]
    table = '\n'.join([f"Machine: {platform.machine()}, {os.cpu_count()} cores (shared: load {os.getloadavg()[0]:.0f}); {time.strftime('%Y-%m-%d %H:%M')}; calibrated on {len(cal):,} training images; {time.time() - t0:.0f} s",
                       '', '| | float (shipped) | int8 convolutions | rule |', '|---|---|---|---|', *rows, '',
                       'Marks, float:', *marks['float'], '', 'Marks, int8:', *marks['int8'], '',
                       f"Verdict: {'within the rule: may ship as the default' if ship else 'outside the rule: not shipped'}."])
    print(table); Path(results).write_text(table + '\n')

"""Inference benchmark: speed of digit_nbdev beside the original app's path, and accuracy on the robustness set.

Prints tables and writes them to bench/results/inference_bench.md. Run: `python bench/inference_bench.py`
(about two minutes on 2 cores; `--n-per-kind 50` for a quicker look). Figures, not pass/fail: the targets of
issue 4 are printed beside them."""
from __future__ import annotations
import os, platform, resource, statistics, subprocess, sys, tempfile, time
from pathlib import Path
import numpy as np
from fastcore.script import call_parse

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
BIN = Path(sys.executable).parent

def timed(f, repeat: int) -> list[float]:
    "Wall times of `repeat` calls of `f`, in ms (after one warm-up call)."
    f(); out = []
    for _ in range(repeat):
        t0 = time.perf_counter(); f(); out.append((time.perf_counter() - t0) * 1e3)
    return out

def photo_files(folder: Path, n_per_kind: int) -> list[Path]:
    "Photo-like robustness samples written as files, as a user would have them."
    from digit_nbdev.photos import PHOTO_KINDS
    from digit_nbdev.robustness_set import robustness_set
    samples = [s for s in robustness_set(n_per_kind, seed=7) if s.kind in PHOTO_KINDS]
    paths = []
    for s in samples:
        p = folder/s.filename; p.write_bytes(s.data); paths.append(p)
    return paths

def original_app_predict(path, model) -> int:
    "The original Streamlit app's path: PIL greyscale, resize to 28x28, scale, `model.predict`."
    from PIL import Image
    img = Image.open(path).convert('L').resize((28, 28))
    x = (np.asarray(img, np.float32) / 255.).reshape(1, 28, 28, 1)
    return int(model.predict(x, verbose=0).argmax())

def latency(paths, repeat: int) -> dict:
    from digit_nbdev.predict import predict
    from digit_nbdev.model import load_model, shipped_model_path
    ours = [t for p in paths for t in timed(lambda: predict(p), repeat)]
    full = [t for p in paths for t in timed(lambda: predict_full_look(p), repeat)]
    keras_model = load_model(shipped_model_path('.keras'))
    sub = paths[::max(1, len(paths) // 40)]  # the original path is slow: a subset is enough for its median
    orig = [t for p in sub for t in timed(lambda: original_app_predict(p, keras_model), 3)]
    return dict(ours=statistics.median(ours), ours_p90=float(np.percentile(ours, 90)), original=statistics.median(orig), n=len(paths),
                full=statistics.median(full), first_look=float(np.mean([read_from_first_look(p) for p in paths])))

def predict_full_look(path):
    "`predict` as it was before the quick first look: the closer look (384 px) only."
    from digit_nbdev.predict import _read_chunk, _prepared
    from digit_nbdev.runtime import get_runner
    return _read_chunk([path], get_runner(), [_prepared(path, quick=False)])[0]

def read_from_first_look(path) -> bool:
    "Whether `predict` answers `path` from its first, quick look."
    from digit_nbdev.predict import Closer, _prepared, predict, SURE
    closer = _prepared(path)[1]
    return closer is Closer.NEVER or (closer is Closer.IF_UNSURE and predict(path).confidence >= SURE)

def throughput(n: int) -> dict:
    from digit_nbdev.predict import predict_many
    from digit_nbdev.data import load_mnist
    (_, _), (x, y) = load_mnist()
    x, y = x[:n], y[:n]
    predict_many(list(x[:256]))
    rates = []
    for _ in range(3):  # one run swings by ~10% on this machine: the median of three
        t0 = time.perf_counter(); preds = predict_many(list(x)); rates.append(n / (time.perf_counter() - t0))
    acc = float(np.mean([p.digit == t for p, t in zip(preds, y)]))
    return dict(per_s=statistics.median(rates), low=min(rates), high=max(rates), n=n, accuracy=acc)

def cold_start(photo: Path, repeat: int = 5) -> dict:
    def run(cmd):
        t0 = time.perf_counter(); r = subprocess.run(cmd, capture_output=True, text=True); dt = time.perf_counter() - t0
        if r.returncode != 0: raise SystemExit(f"{cmd} failed: {r.stderr.strip()}")
        return dt
    ours = [run([str(BIN/'digit_predict'), str(photo)]) for _ in range(repeat)]
    tf = [run([sys.executable, '-c', 'import tensorflow']) for _ in range(2)]
    return dict(ours=statistics.median(ours), tensorflow_import=statistics.median(tf))

def rss_mb() -> float: return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def pages_table(n_pages: int, seed: int = 2026, real: bool = True) -> list[str]:
    "Pages of numbers: synthetic pages (numbers read exactly), the real pages, and the time to read a page of 4 lines (pages alone, on a tuning seed: `python -c \"import sys; sys.path.insert(0, 'bench'); from inference_bench import pages_table; print(*pages_table(200, seed=7, real=False), sep='\\n')\"`)."
    from digit_nbdev.robustness_set import page_samples
    from digit_nbdev.page import read
    from digit_nbdev.robustness import real_dir, real_set, numbers_read
    pages = page_samples(n_pages, seed=seed)
    t0 = time.time(); readings = [read(p.data) for p in pages]; dt = time.time() - t0
    right, total = sum(numbers_read(r.text, p.label) for r, p in zip(readings, pages)), sum(len(p.label.split()) for p in pages)
    four = [p for p in pages if len(p.label.split()) == 4][:20]
    times = []
    for p in four:
        read(p.data); t0 = time.perf_counter(); read(p.data); times.append(time.perf_counter() - t0)
    out = ['| pages of numbers | digit_nbdev | target |', '|---|---|---|',
           f"| synthetic pages ({n_pages}, seed {seed}, 2-5 numbers each; some turned, ruled, shadowed, on a table, in small writing, with small or tall digits): numbers read exactly | {right / total:.1%} ({right} of {total}; {dt:.0f} s) | >= 93% |",
           f"| a page of 4 numbers, warm, one process (median of {len(times)}) | {statistics.median(times) * 1e3:.0f} ms | <= 150 ms |"]
    if real and real_dir():
        real_pages = [s for s in real_set(folders=('photos',)) if s.group == 'real page']
        got = [numbers_read(read(s.data).text, s.label) for s in real_pages]
        out.append(f"| real pages (`../shared/real`, {len(real_pages)} pages): numbers read exactly | {sum(got)} of {sum(len(s.label.split()) for s in real_pages)} | >= 8 of 10 |")
    return out


MARKS_SEED = 2026  # the benchmark's seed: the verifier learned from seeds 12-16 and chose its constants on 13 and 1000

def mark_uploads(per_kind_domain: int, seed: int = MARKS_SEED) -> list[tuple]:
    "Marks that are not digits, as users upload them: `(kind, domain, source, digit)` (a piece's digit, else -1) for every kind of `marks.MARK_KINDS` in every domain (the array, a photo, a drawing pad), `per_kind_domain` of each."
    from digit_nbdev import digit_check_data as dc, marks as mk, photos
    from digit_nbdev.image_files import upload_bytes
    from digit_nbdev.data import load_mnist
    (x, y), _ = load_mnist()
    x, y = x[slice(*mk.TRAIN_DIGITS)], y[slice(*mk.TRAIN_DIGITS)]
    out = []
    for i, kind in enumerate(mk.MARK_KINDS):
        rng = np.random.default_rng([seed, i])  # each kind its own stream: a change to one kind's generator resamples no other kind
        for domain in dc.DOMAINS:
            for _ in range(per_kind_domain):
                digit = -1
                if kind == 'shadow' and domain == 'photo':  # the shadow of a page, not a stroke
                    source = upload_bytes(photos.blank_page(str(rng.choice(['shadow', 'paper', 'specks'])), rng))
                else:
                    if kind == 'piece': img, k = mk.digit_piece(x, rng); digit = int(y[k])
                    else: img = mk.mark28(kind, rng, x)
                    source = img if domain == 'raw' else dc.photo_image(img, rng) if domain == 'photo' else dc.pad_image(img, rng)
                if source is not None: out.append((kind, domain, source, digit))
    return out

def marks_table(per_kind_domain: int) -> list[str]:
    "Marks that are not digits through `predict_many`: answered 'no digit', or flagged as unsure. Left out as `digit_check_data.clean` leaves them out of the verifier's data: what comes out of `preprocess` as a 1-like stroke, a face that lost its eyes and mouth (a 0), a piece of a digit still read as that digit."
    from digit_nbdev import digit_check_data as dc, marks as mk
    from digit_nbdev.digit_check import digit_checker
    from digit_nbdev.predict import predict_many
    marks = mark_uploads(per_kind_domain)
    preds = predict_many([m[2] for m in marks])
    # Which marks came out of `preprocess` as digits is judged on the digit model's reading with the digit check off, so
    # the count is the same whatever the check decides (judged on `preds`, a mark the check let through could be left
    # out as a digit while the same mark rejected was kept: a stricter check was judged on more marks).
    check = digit_checker(); shipped = check.threshold; check.threshold = 0.0
    try: unchecked = predict_many([m[2] for m in marks])
    finally: check.threshold = shipped
    def a_digit(kind, digit, p):
        if p.status != 'ok': return False
        return (mk.looks_like_one(np.uint8(p.processed * 255)) or (kind == 'smiley' and dc.ink_parts(p.processed) < 2)
                or (digit >= 0 and p.probabilities[digit] > dc.STILL_READ))
    kept = [(m, p) for m, p, u in zip(marks, preds, unchecked) if not a_digit(m[0], m[3], u)]
    nod = sum(p.status == 'no_digit' for _, p in kept)
    flagged = sum(p.status == 'ok' and p.low_confidence for _, p in kept)
    worst = sorted(((sum(p.status == 'no_digit' for m, p in kept if m[0] == k) / max(1, sum(m[0] == k for m, _ in kept)), k) for k in mk.MARK_KINDS))[:3]
    return ['| marks that are not digits (held-out seed) | digit_nbdev | target |', '|---|---|---|',
            f"| {len(kept)} marks ({len(mk.MARK_KINDS)} kinds x 3 domains, seed {MARKS_SEED}; {len(marks) - len(kept)} of {len(marks)} left out as digits): answered 'no digit' | {nod / len(kept):.1%} | >= 97% |",
            f"| ... answered 'no digit' or flagged as unsure | {(nod + flagged) / len(kept):.1%} | |",
            f"| kinds answered 'no digit' least | {', '.join(f'{k} {v:.0%}' for v, k in worst)} | |"]

def trust_table() -> list[str]:
    "On the real single digits: digits answered 'no digit', and how far an answer not flagged as unsure can be trusted."
    from digit_nbdev.predict import predict_many
    from digit_nbdev.robustness import real_set
    singles = [s for s in real_set() if s.group in ('real photo', 'real drawing', 'real scan')]
    preds = predict_many([s.data for s in singles])
    sure = [(s, p) for s, p in zip(singles, preds) if p.status == 'ok' and not p.low_confidence]
    wrong = [(s, p) for s, p in zip(singles, preds) if p.status != 'ok' or p.digit != s.label]
    right = sum(p.digit == s.label for s, p in sure)
    right_flagged = sum(p.status == 'ok' and p.low_confidence and p.digit == s.label for s, p in zip(singles, preds))
    return ['| real single digits (photos, drawings, scans) | digit_nbdev | target |', '|---|---|---|',
            f"| real digits answered 'no digit' | {sum(p.status != 'ok' for p in preds)} of {len(singles):,} | 0 |",
            f"| answers not flagged as unsure that are right | {right / len(sure):.2%} ({len(sure) - right} of {len(sure):,} wrong) | >= 99.7% |",
            f"| errors flagged as unsure | {sum(p.status == 'ok' and p.low_confidence for _, p in wrong)} of {len(wrong)} | most |",
            f"| right answers flagged as unsure (the flag's cost) | {right_flagged / max(1, right_flagged + right):.1%} | |"]

def read_path_table(samples, outcomes) -> list[str]:
    "Single digits of the robustness set as `digit_predict` and the dashboard answer them by default (`page.read`: a digit, or a number or a page when it takes the image for one), beside `predict`'s answers."
    from digit_nbdev.page import Kind, read_many
    singles = [(s, o) for s, o in zip(samples, outcomes) if s.group in ('photo', 'hard', 'fonts')]
    readings = read_many([s.data for s, _ in singles])
    by_read = sum(r.text == str(s.label) for r, (s, _) in zip(readings, singles))
    by_predict = sum(o.ours_right for _, o in singles)
    as_numbers = sum(r.kind in (Kind.NUMBER, Kind.NUMBERS) for r in readings)
    return ['| single digits (photo, hard, fonts; seed 2026) | right | read as a number or a page |', '|---|---:|---:|',
            f"| `predict` (the figures above) | {by_predict:,} of {len(singles):,} | - |",
            f"| `read` (what `digit_predict` and the dashboard answer) | {by_read:,} of {len(singles):,} | {as_numbers} |"]

@call_parse
def main(
    n_per_kind: int = 200,  # robustness samples per kind
    n_pages: int = 200,  # synthetic pages of numbers
    repeat: int = 5,  # timed calls per photo
    n_batch: int = 10000,  # MNIST digits for the batch throughput
    n_marks: int = 12,  # marks of each kind in each domain (21 kinds, 3 domains)
    out: str = 'bench/results/inference_bench.md',  # markdown copy of the tables
):
    "Measure inference speed and robustness; print the tables and write them as markdown."
    from digit_nbdev.robustness import evaluate, summary, markdown_table, TARGETS
    from digit_nbdev.robustness_set import robustness_set
    lines = [f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; Python {platform.python_version()}", '']
    with tempfile.TemporaryDirectory() as d:
        paths = photo_files(Path(d), max(4, n_per_kind // 20))
        lat = latency(paths, repeat)
        cold = cold_start(paths[0])
    thr = throughput(n_batch)
    lines += ['| measure | digit_nbdev | original app | target |', '|---|---|---|---|',
              f"| warm `predict(path)` of one photo, median over {lat['n']} photo-like files | {lat['ours']:.2f} ms (p90 {lat['ours_p90']:.2f} ms; {lat['first_look']:.0%} read from the first look) | {lat['original']:.1f} ms | <= 2 ms |",
              f"| the same with the closer (384 px) look only | {lat['full']:.2f} ms | | |",
              f"| batch `predict_many`, MNIST-sized digits (median of 3 runs) | {thr['per_s']:,.0f} digits/s ({thr['low']:,.0f}-{thr['high']:,.0f}; {thr['accuracy']:.2%} right on {thr['n']:,}) | | >= 5,000/s |",
              f"| cold start: `digit_predict photo.jpg` as a process | {cold['ours']:.2f} s | (importing TensorFlow alone: {cold['tensorflow_import']:.2f} s) | <= 1.5 s |",
              f"| peak memory of this benchmark process | {rss_mb():.0f} MB | | |", '']
    from digit_nbdev.robustness import real_dir, real_set, REAL_TARGETS
    if real_dir():
        real = real_set(); t0 = time.time(); real_outcomes = evaluate(real); dt = time.time() - t0
        lines += [f"Real images (`../shared/real`, evaluation only): {len(real):,} files, evaluated in {dt:.0f} s.", '',
                  markdown_table(summary(real_outcomes, 'group'), REAL_TARGETS), '', *trust_table(), '']
    else: lines += ['Real images: `../shared/real` is absent here, not measured.', '']
    lines += marks_table(n_marks) + ['']
    lines += pages_table(n_pages) + ['']
    samples = robustness_set(n_per_kind, seed=2026)
    t0 = time.time(); outcomes = evaluate(samples); dt = time.time() - t0
    lines += [f"Robustness set: {len(samples):,} images ({n_per_kind} per kind, seed 2026), evaluated in {dt:.0f} s.", '',
              markdown_table(summary(outcomes, 'group'), TARGETS), '', markdown_table(summary(outcomes, 'kind')), '',
              *read_path_table(samples, outcomes), '']
    text = '\n'.join(lines)
    print(text)
    Path(out).parent.mkdir(parents=True, exist_ok=True); Path(out).write_text(text)

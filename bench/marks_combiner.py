"""Marks combiner benchmark (issue 12): does a small learned combiner over both verifiers' log-odds and what the look
knows (pieces, groups, widest group, the ink box's aspect, ink coverage, the digit model's sureness) reject more marks
than the shipped pair's mean log-odds (`DIGIT_CHECK`) at no more digits lost?

Every image goes through `predict_many` (the digit check's threshold set to 0 so that nothing is rejected yet), so the
features are exactly those `predict` has. Three sets, none of them the benchmark's seed 2026 or the real images:
- *training* (seed 41): marks of every kind in every domain (`inference_bench.mark_uploads`), digits of the main
  model's validation split (half A: digits it never trained on) raw, as every photo kind, on a pad, fonts, other styles,
  slanted; the combiner (logistic regression, numpy) is fitted here.
- *choosing* (seed 31): the same generators, the validation split's other half B; the threshold is chosen here.
- *held-out* (seed 2027): marks, and MNIST *test* digits (all 10,000 raw, the rest rendered): reported.

The combiner decides only where `DigitCheck` asks its second model and the pair's p(digit) is below `--gate`; elsewhere
the pair decides as shipped. Its threshold: the highest at which the choosing digits lost are no more than the pair's at
`DIGIT_CHECK`. Not shipped (bench/results/marks_t12m.md): commit 8b96362 has it on `predict`'s path (`DigitCheck.verdict`,
`digit_check_combiner.json` as `--save` writes it) and the A/B run there (`--ab_only`, `--real`).

`--ink`: the sets again (their own caches) with what the first look's `Ink` knew before normalising (`ink_features`),
for a study: `Prediction` does not carry them.

`python bench/marks_combiner.py --boost 3` (about 25 minutes on 2 loaded cores the first time, seconds after: features
cached in $TMPDIR/digit_nbdev_marks_combiner); tables to `--out` (bench/results/marks_combiner.md)."""
from __future__ import annotations
import json, os, platform, sys, tempfile, time
from pathlib import Path
import numpy as np
from fastcore.script import call_parse

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'bench'))

def digit_uploads(x: np.ndarray, y: np.ndarray, seed: int, per_photo_kind: int, pad: int, font: int, font_photo: int,
                  style: int, slant: int, raw: bool = True) -> list[tuple]:
    "Digits of `(x, y)` as users upload them: `(kind, domain, source, digit)`: every digit raw (if `raw`), then rendered."
    from digit_nbdev import digit_check_data as dc
    photos, styles = dc.photos, dc.styles
    out = [('mnist', 'raw', img, int(d)) for img, d in zip(x, y)] if raw else []
    def any_domain(img, rng):  # as `make_samples` draws a domain
        domain = str(rng.choice(dc.DOMAINS, p=dc.DOMAIN_SHARES))
        return domain, img if domain == 'raw' else dc.photo_image(img, rng) if domain == 'photo' else dc.pad_image(img, rng)
    for i, kind in enumerate(photos.DIGIT_KINDS):
        rng = np.random.default_rng([seed, 10, i])
        for j in rng.integers(len(x), size=per_photo_kind): out.append(('mnist', 'photo', dc.photo_image(x[j], rng, kind), int(y[j])))
    rng = np.random.default_rng([seed, 1])
    for j in rng.integers(len(x), size=pad): out.append(('mnist', 'pad', dc.pad_image(x[j], rng), int(y[j])))
    rng = np.random.default_rng([seed, 2])
    for _ in range(font):
        d = int(rng.integers(10)); img = dc.font_digit28(d, rng)
        if img is not None: out.append(('font', *any_domain(img, rng), d))
    rng = np.random.default_rng([seed, 3])
    for _ in range(font_photo):
        d = int(rng.integers(10))
        out.append(('font_photo', 'photo', photos.upload_bytes(photos.font_digit(d, int(rng.integers(len(photos.HANDWRITING_FONTS))), rng)), d))
    rng = np.random.default_rng([seed, 4])
    for _ in range(style):
        xs, ys = styles.style_digits(1, rng, source=(x, y)); out.append(('style', *any_domain(xs[0], rng), int(ys[0])))
    rng = np.random.default_rng([seed, 5])
    for j in rng.integers(len(x), size=slant): out.append(('slant', *any_domain(dc.slanted(x[j], rng), rng), int(y[j])))
    return [o for o in out if o[2] is not None]

LOOK_FEATURES = ('first', 'second', 'pair', 'sure', 'entropy', 'pieces', 'groups', 'widest', 'aspect', 'coverage')  # what `features` gives, in its order

def look_features(first: np.ndarray, second: np.ndarray, looks: list, images: np.ndarray) -> np.ndarray:
    "One row per image (`LOOK_FEATURES`): both verifiers' log-odds and their mean; the digit model's calibrated sureness (log) and entropy; of each look (`looks`: predictions before the check), the pieces and groups of ink (log), the widest group's and the ink box's width over height (log); the share of the 28x28 image inked."
    n = len(looks)
    probs = np.array([p.probabilities for p in looks], np.float64).reshape(n, -1)
    boxes = np.array([p.box for p in looks], np.float64).reshape(n, 4)
    return np.column_stack([first, second, (np.asarray(first) + second) / 2, np.log(np.clip(probs.max(1, initial=0), 1e-9, 1)),
                            -(probs * np.log(np.clip(probs, 1e-12, 1))).sum(1),
                            np.log(np.maximum(1, [p.pieces for p in looks])), np.log(np.maximum(1, [p.groups for p in looks])),
                            np.log(np.maximum(1e-3, [p.widest for p in looks])),
                            np.log(np.maximum(1, boxes[:, 2] - boxes[:, 0]) / np.maximum(1, boxes[:, 3] - boxes[:, 1])),
                            np.asarray(images, np.float64).reshape(n, -1).mean(1)]).reshape(n, len(LOOK_FEATURES))

def features(preds: list) -> np.ndarray:
    "What `predict` knows of each 'ok' prediction (rows, `LOOK_FEATURES`), both verifiers asked for every image."
    from digit_nbdev.digit_check import digit_checker, log_odds
    x = np.stack([p.processed for p in preds]).astype(np.float32)
    first, second = (log_odds(m(x)[:, 0]) for m in digit_checker().members)
    return look_features(first, second, preds, x)

INK_FEATURES = ('side', 'stroke', 'contrast', 'fill', 'ruled_or_soft')  # what `ink_features` gives, in its order

def ink_features(source) -> list:
    "What the first look knew before normalising, which `Prediction` does not carry (`--ink`; NaN where this look finds no ink): the ink box's longest side over the working image's (log), the stroke width (twice the kept area over its edge) over that side (log), the ink's median contrast, the share of the box inked, ruled or soft."
    import cv2
    from digit_nbdev.ink import bounds, kept_pixels, preprocess, working_image
    from digit_nbdev.paper import QUICK_SIZE
    img = source if isinstance(source, np.ndarray) else working_image(source, QUICK_SIZE // 2)
    ink = preprocess(img, QUICK_SIZE, whole=True)[1]  # (the quick look, as `predict` first looks: a closer look, where it took one, is not redone)
    if not ink.components: return [np.nan] * len(INK_FEATURES)
    x0, y0, x1, y1 = bounds(ink.components)
    keep = kept_pixels(ink.labels[y0:y1, x0:x1], ink.components).astype(np.uint8)
    area = float(keep.sum())
    edge = keep - cv2.erode(keep, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    side = max(x1 - x0, y1 - y0)
    return [np.log(side / max(ink.ink.shape)), np.log(2 * area / max(1.0, float(edge.sum())) / side),
            float(np.median(ink.ink[y0:y1, x0:x1][keep > 0])), area / ((x1 - x0) * (y1 - y0)), float(ink.ruled or ink.soft)]

def _uploads(args):
    what, seed = args
    from digit_nbdev.data import load_mnist, split_validation
    from inference_bench import mark_uploads
    if what[0] == 'marks': return [('mark', *m) for m in mark_uploads(what[1], seed)]
    (x, y), (xt, yt) = load_mnist()
    if what[0] == 'test': return [('digit', *d) for d in digit_uploads(xt, yt, seed, 300, 900, 900, 600, 800, 800)]
    xv, yv = split_validation(x, y)[1]
    half = slice(0, len(xv) // 2) if what[1][0] == 'A' else slice(len(xv) // 2, None)
    k = int(what[1][1:] or 1)  # 'A6': half A's digits rendered six times as often, not raw
    return [('digit', *d) for d in digit_uploads(xv[half], yv[half], seed, 100 * k, 500 * k, 300 * k, 200 * k, 400 * k, 400 * k, raw=k == 1)]

def measured(name: str, seed: int, marks_per: int, digits: str, cache: Path, ink: bool = False) -> dict:
    "The features of one set (cached), through `predict_many` with nothing rejected by the digit check; with `ink`, `ink_features` beside."
    path = cache / f"{'ink_' if ink else ''}{name}_{seed}.npz"
    if not path.exists():
        import multiprocessing
        from digit_nbdev import digit_check_data as dc, marks as mk
        from digit_nbdev.digit_check import digit_checker
        from digit_nbdev.predict import predict_many
        jobs = [(('marks', marks_per), seed)] if marks_per else []
        jobs += [(('test' if digits == 'test' else 'val', d), seed if i == 0 else [seed, i]) for i, d in enumerate(digits.split(','))]  # (several: shared by the workers)
        with multiprocessing.get_context('fork').Pool(2) as pool: parts = pool.map(_uploads, jobs, chunksize=1)
        items = [i for part in parts for i in part]
        check = digit_checker(); shipped = check.threshold; check.threshold = 0.0
        try: preds = predict_many([i[3] for i in items])
        finally: check.threshold = shipped
        def a_digit(kind, digit, p):  # marks left out as the benchmark's marks_table leaves them out
            return (mk.looks_like_one(np.uint8(p.processed * 255)) or (kind == 'smiley' and dc.ink_parts(p.processed) < 2)
                    or (digit >= 0 and p.probabilities[digit] > dc.STILL_READ))
        keep = [j for j, (i, p) in enumerate(zip(items, preds)) if p.status == 'ok' and not (i[0] == 'mark' and a_digit(i[1], i[4], p))]
        lost_early = sum(p.status != 'ok' for i, p in zip(items, preds) if i[0] == 'digit')
        marks_early = sum(p.status != 'ok' for i, p in zip(items, preds) if i[0] == 'mark')
        kp = [preds[j] for j in keep]
        f = features(kp)
        if ink:
            with multiprocessing.get_context('fork').Pool(2) as pool: f = np.column_stack([f, pool.map(ink_features, [items[j][3] for j in keep], chunksize=64)])
        np.savez_compressed(path, f=f, mark=np.array([items[j][0] == 'mark' for j in keep]),
                            kind=np.array([items[j][1] for j in keep]), domain=np.array([items[j][2] for j in keep]),
                            right=np.array([kp[k].digit == items[j][4] for k, j in enumerate(keep)]),
                            early=np.array([lost_early, marks_early]))
    with np.load(path) as f: return {k: f[k] for k in f.files}

def fit_logistic(f: np.ndarray, mark: np.ndarray, l2: float = 1e-2, rounds: int = 30) -> dict:
    "Logistic regression p(digit) on standardised features (Newton's method, L2 penalty `l2`): weights for `combined`."
    mu, sd = f.mean(0), f.std(0) + 1e-9
    z = np.column_stack([np.ones(len(f)), (f - mu) / sd]); t = (~mark).astype(np.float64)
    w = np.zeros(z.shape[1])
    for _ in range(rounds):
        p = 1 / (1 + np.exp(-z @ w))
        g = z.T @ (p - t) + l2 * len(f) * np.r_[0, w[1:]]
        h = (z * (p * (1 - p))[:, None]).T @ z + l2 * len(f) * np.diag(np.r_[0, np.ones(len(w) - 1)])
        w -= np.linalg.solve(h, g)
    return dict(mean=mu.tolist(), scale=sd.tolist(), weights=w.tolist())

def combined(f: np.ndarray, model: dict) -> np.ndarray:
    "The combiner's log-odds that each row is a digit."
    return model['weights'][0] + ((f - np.array(model['mean'])) / np.array(model['scale'])) @ np.array(model['weights'][1:])

def curve(score: np.ndarray, mark: np.ndarray, lost=(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 25, 30, 35)) -> dict:
    "Marks rejected (score below a threshold) at the most permissive threshold losing each of `lost` digits: {lost: (share, threshold)}."
    d = np.sort(score[~mark]); m = score[mark]
    out = {}
    for n in lost:
        t = d[n] if n < len(d) else np.inf  # below the (n+1)-th lowest digit: exactly n lost (ties aside)
        out[n] = (float((m < t).mean()), float(t))
    return out

def right_curve(score: np.ndarray, s: dict, lost=(1, 2, 3, 4, 5, 6, 8, 10)) -> dict:
    "As `curve`, counting only the digits the digit model reads right (a digit `preprocess` destroyed is read wrong anyway): {lost: (marks rejected, all digits lost)}."
    right = np.sort(score[~s['mark'] & s['right']]); out = {}
    for n in lost:
        t = right[n] if n < len(right) else np.inf
        out[n] = (float((score[s['mark']] < t).mean()), int((score[~s['mark']] < t).sum()))
    return out

def at(score, mark, t) -> tuple:
    return float((score[mark] < t).mean()), int((score[~mark] < t).sum())

@call_parse
def main(cache: str = str(Path(tempfile.gettempdir()) / 'digit_nbdev_marks_combiner'),  # where the features are kept
         l2: float = 1e-2,  # the logistic regression's L2 penalty
         drop: str = '',  # features left out, comma-separated (`LOOK_FEATURES` and, with `ink`, `INK_FEATURES` names)
         ink: bool = False,  # the sets again with `ink_features` beside (their own caches; the boost draws half as many: one job)
         gate: float = 0.5,  # the combiner decides only where the shipped pair's p(digit) is below this (elsewhere: a digit); fitted there
         boost: int = 0,  # if set, twice this many renderings more of each set's digits (training and choosing)
         save: str = '',  # write the fitted combiner here (JSON, as commit 8b96362 reads it)
         out: str = ''):  # markdown copy of the tables
    from digit_nbdev.digit_check import DIGIT_CHECK, LOG_ODDS_CLIP, log_odds
    t0 = time.time(); c = Path(cache); c.mkdir(parents=True, exist_ok=True)
    train, choose, held = (measured(*a, c, ink) for a in (('train', 41, 40, 'A'), ('choose', 31, 40, 'B'), ('held', 2027, 100, 'test')))
    if boost:  # more rendered digits beside: the digits the pair doubts are a few in a thousand
        def more(a, b): return {k: np.concatenate([a[k], b[k]]) if k != 'early' else a[k] + b[k] for k in a if k in b}
        train = more(train, measured('train_more', 43, 0, f'A{boost}' if ink else f'A{boost},A{boost}', c, ink))
        choose = more(choose, measured('choose_more', 33, 0, f'B{boost}' if ink else f'B{boost},B{boost}', c, ink))
    names = LOOK_FEATURES + (INK_FEATURES if ink else ())
    fill = np.nanmedian(train['f'][:, :len(names)], 0)  # (a look that finds no ink again: the training median)
    for d in (train, choose, held): d['f'] = np.where(np.isnan(d['f'][:, :len(names)]), fill, d['f'][:, :len(names)])  # (the first caches had a stroke width beside: weight 0.00)
    cols = [i for i, n in enumerate(names) if n not in drop.split(',')]
    pair_t, g = float(log_odds(DIGIT_CHECK)), float(log_odds(gate))
    ask = 2 * pair_t - float(log_odds(LOG_ODDS_CLIP))  # where `DigitCheck` asks the second model at all (the first's log-odds below this)
    def gated(s): return (s['f'][:, 0] < ask) & (s['f'][:, 2] < g)
    inside = gated(train)
    model = fit_logistic(train['f'][inside][:, cols], train['mark'][inside], l2); model['features'] = [names[i] for i in cols]
    model['gate'] = g
    def score(s): return np.where(gated(s), combined(s['f'][:, cols], model), np.inf)
    lines = [f"`python bench/marks_combiner.py {' '.join(sys.argv[1:])}`; machine: {platform.machine()}, {os.cpu_count()} cores (shared); {time.strftime('%Y-%m-%d %H:%M')}; {time.time() - t0:.0f} s (features cached); features: {', '.join(model['features'])}; l2 {l2:g}; gate: the pair below {gate:g} ({int(inside.sum())} training rows)", '']
    for name, s in (('training (seed 41)', train), ('choosing (seed 31)', choose), ('held-out (seed 2027)', held)):
        early = f" ({s['early'][1]} marks, {s['early'][0]} digits 'no digit' or error before it)" if 'early' in s else ''
        lines.append(f"{name}: {int(s['mark'].sum()):,} marks, {int((~s['mark']).sum()):,} digits reach the digit check{early}")
    ch_pair = at(choose['f'][:, 2], choose['mark'], pair_t)
    sc = score(choose)
    # the threshold: the highest losing no more choosing digits than the shipped pair at DIGIT_CHECK does
    t = curve(sc, choose['mark'], (ch_pair[1],))[ch_pair[1]][1]
    lines += ['', '| set | rule | marks rejected | digits lost |', '|---|---|---:|---:|']
    for name, s in (('choosing', choose), ('held-out', held)):
        lines.append(f"| {name} | shipped pair < DIGIT_CHECK | {at(s['f'][:, 2], s['mark'], pair_t)[0]:.2%} | {at(s['f'][:, 2], s['mark'], pair_t)[1]} |")
        r = at(score(s), s['mark'], t)
        lines.append(f"| {name} | combiner < {t:.3f} | {r[0]:.2%} | {r[1]} |")
    lines += ['', 'Held-out curves (marks rejected at N digits lost):', '', '| N | pair | combiner |', '|---:|---:|---:|']
    cp, cc = curve(held['f'][:, 2], held['mark']), curve(score(held), held['mark'])
    lines += [f"| {n} | {cp[n][0]:.2%} | {cc[n][0]:.2%} |" for n in cp]
    for name, s in (('choosing', choose), ('held-out', held)):
        rp, rc = right_curve(s['f'][:, 2], s), right_curve(score(s), s)
        lines += ['', f'{name}: marks rejected (all digits lost) at N digits *read right* lost:', '', '| N | pair | combiner |', '|---:|---:|---:|']
        lines += [f"| {n} | {rp[n][0]:.2%} ({rp[n][1]}) | {rc[n][0]:.2%} ({rc[n][1]}) |" for n in rp]
    def lost(sc, at_t): return f"{int((sc[~held['mark']] < at_t).sum())} ({int((sc[~held['mark'] & held['right']] < at_t).sum())} read right)"
    lines += ['', f"Held-out digits lost at the chosen thresholds: pair {lost(held['f'][:, 2], pair_t)}, combiner {lost(score(held), t)}."]
    model['threshold'] = t
    lines += ['', 'weights (standardised): ' + ', '.join(f'{n} {w:+.2f}' for n, w in zip(['bias'] + model['features'], model['weights']))]
    text = '\n'.join(lines); print(text)
    if out: Path(out).write_text(text + '\n')
    if save: Path(save).write_text(json.dumps(model, indent=1))

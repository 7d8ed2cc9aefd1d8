"""Second-opinion replay (issue 12): a second digit model asked where the shipped one doubts, judged on synthetic tuning data.

The mechanism is t12c's candidate (commit af809a5, reverted in 6335727; `git cherry-pick af809a5` still applies to main):
in `12_predict`'s `_read_chunk`, answers of the shipped int8 model with a calibrated confidence below 0.9 become the mean
of its calibrated probabilities and the second model's on the same final 28x28. Since the digit check after it reads
only the 28x28, the mechanism is replayed exactly offline: `collect` runs the shipped path once (`predict_many`) on each
data set and caches per item the label, group:kind, status, calibrated probabilities and final 28x28 (`--cache`);
`replay` asks each second model (`name=path.tflite`, its temperature from the card beside it) on the doubtful ones.
Data sets (synthetic only; real images never): `seedN` = `robustness_set(200, N)`'s single-digit kinds (photo, hard,
fonts, blank groups), `valid` = the MNIST validation split (5,001), `styles_<mix>` = 8,000 held-out style digits
(`style_digits(8000, rng 6262, source=<validation split>, mix=<mix>)`, as `bench/style_bench.py` builds them), and
`bothstyles_<mix>`: the same on the validation digits that a second model trained with `split_validation(.., seed=7)`
never saw either (374 bases). Helper t12e's figures: `bench/results/second_opinion_t12e.md`. On 2 cores with other
work, a robustness seed takes 1.5-8 minutes, the rest seconds.
Run: `python bench/second_opinion_sim.py collect seed201,seed202,valid,styles_first` then
`python bench/second_opinion_sim.py replay seed201,seed202,valid,styles_first --seconds C1=/tmp/c1.tflite`."""
from __future__ import annotations
import json, os
from pathlib import Path
import numpy as np
from fastcore.script import call_parse

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
BELOW = 0.9  # `SECOND_OPINION_BELOW` of af809a5: the one threshold the brief allows
N_STYLES, STYLE_SEED, OTHER_SPLIT_SEED = 8000, 6262, 7  # held-out style digits; the split seed of the independent model (C2)

def style_set(name: str, seed: int = STYLE_SEED):
    "`(x, y, style names)` of a `styles_<mix>` or `bothstyles_<mix>` data set, drawn with `seed`."
    from digit_nbdev import styles
    from digit_nbdev.data import load_mnist, split_validation
    (x, y), _ = load_mnist()
    _, (xv, yv) = split_validation(x, y)
    if name.startswith('both'):
        seen = {r.tobytes() for r in split_validation(x, y, 5000, OTHER_SPLIT_SEED)[1][0]}
        keep = np.array([r.tobytes() in seen for r in xv]); xv, yv = xv[keep], yv[keep]
    return styles.style_digits(N_STYLES, np.random.default_rng(seed), source=(xv, yv), return_styles=True, mix=name.split('_', 1)[1])

def data_set(name: str, style_seed: int = STYLE_SEED):
    "`(sources, labels, 'group:kind' per item)` of data set `name`."
    from digit_nbdev.data import load_mnist, split_validation
    if name.startswith('seed'):
        from digit_nbdev.robustness_set import robustness_set, GROUPS
        s = robustness_set(200, seed=int(name[4:]), kinds=[k for k, g in GROUPS.items() if g in ('photo', 'hard', 'fonts', 'blank')])
        return [x.data for x in s], [-1 if x.label is None else x.label for x in s], [f'{x.group}:{x.kind}' for x in s]
    if name == 'valid':
        (x, y), _ = load_mnist(); _, (xv, yv) = split_validation(x, y)
        return list(xv), list(yv), ['valid:valid'] * len(yv)
    xs, ys, names = style_set(name, style_seed)
    return list(xs), list(ys), [f'styles:{n}' for n in names]

def collect(name: str, cache: Path, style_seed: int = STYLE_SEED) -> None:
    "Run the shipped path (`predict_many`, no second opinion) on data set `name` and cache what `replay` needs."
    from digit_nbdev.predict import predict_many, Status
    sources, labels, groups = data_set(name, style_seed)
    preds = predict_many(sources)
    np.savez_compressed(cache/f'{name}.npz', labels=np.array(labels), groups=np.array(groups), status=np.array([p.status.value for p in preds]),
                        probs=np.array([p.probabilities for p in preds], np.float32), p_digit=np.array([p.p_digit for p in preds]),
                        processed=np.stack([p.processed for p in preds]).astype(np.float32), ok=np.array([p.status is Status.OK for p in preds]))

def replayed(d: dict, path: str | None) -> tuple:
    "Answers (-1: no digit) and the doubtful mask of cached data `d`, with the second model at `path` asked below `BELOW` (None: the shipped model alone)."
    from digit_nbdev.runtime import LiteRTRunner, model_temperature, tempered
    p1 = d['probs']; ask = d['ok'] & (p1.max(1).astype(np.float64) < BELOW); p = p1.copy()
    if path and ask.any(): p[ask] = (p1[ask] + tempered(LiteRTRunner(path)(d['processed'][ask]), model_temperature(path))) / 2
    return np.where(d['ok'], p.argmax(1), -1), ask

def counts(d: dict, path: str | None) -> dict:
    "Right answers per group and per group:kind, and how many were asked."
    digit, ask = replayed(d, path)
    right, groups = digit == d['labels'], d['groups']
    group = np.array([g.split(':')[0] for g in groups])
    out = {g: int(right[group == g].sum()) for g in sorted(set(group))}
    out.update({g: int(right[groups == g].sum()) for g in sorted(set(groups))}, asked=int(ask.sum()))
    return out

def mnist_test(path: str | None) -> float:
    "Percent right on MNIST test as the model sees it (the card's way: raw digits / 255), int8, with the second opinion below `BELOW`."
    from digit_nbdev.data import load_mnist
    from digit_nbdev.runtime import LiteRTRunner, model_temperature, shipped_runner, tempered
    _, (x, y) = load_mnist(); x = x.astype(np.float32)[..., None] / 255.
    r = shipped_runner(); p = tempered(r(x), r.temperature); ask = p.max(1).astype(np.float64) < BELOW
    if path: p[ask] = (p[ask] + tempered(LiteRTRunner(path)(x[ask]), model_temperature(path))) / 2
    return round(100 * float((p.argmax(1) == y).mean()), 2)

@call_parse
def main(what: str,  # 'collect' (the shipped path on the data sets, cached) or 'replay' (the second models on the cache)
         sets: str,  # data sets, comma-separated: seedN, valid, styles_<mix>, bothstyles_<mix>
         seconds: str = '',  # replay: second models, name=path.tflite, comma-separated
         cache: str = '/tmp/second_opinion_sim',  # where collect writes and replay reads the shipped path's answers
         style_seed: int = STYLE_SEED):  # collect: the held-out style digits' seed (t12e 6262, t12f 6363, t12g 6464: each used once)
    cache = Path(cache); cache.mkdir(parents=True, exist_ok=True)
    if what == 'collect':
        for name in sets.split(','): collect(name, cache, style_seed); print(name, 'cached', flush=True)
        return
    models = {'shipped': None, **dict(s.split('=') for s in seconds.split(',') if s)}
    data = {n: dict(np.load(cache/f'{n}.npz')) for n in sets.split(',')}
    print(json.dumps({m: dict(mnist_test=mnist_test(p), **{n: counts(d, p) for n, d in data.items()}) for m, p in models.items()}))

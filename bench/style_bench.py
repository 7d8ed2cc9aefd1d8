"""Style benchmark (issue 12): candidate fine-tunes of the main model judged on synthetic data, then gated on MNIST test.

For each run directory (a `finetune` output: `digit_cnn.keras`, `.tflite`, `.json`): accuracy of the Keras model on the
MNIST validation split (5,001 digits no fine-tune trained on), on held-out style digits (`styles.style_digits` of the
`--mix`, built on the validation split's digits with `--seed`: choose a recipe on one seed, report another), per style,
and on the validation digits slanted by up to 0.5 (`digit_check_data.slanted`); then the must-hold gate: MNIST test
for the float `.tflite` and for its int8 copy, converted and calibrated as `bench/quant_bench.py` does (written beside
it as `digit_cnn_int8.tflite`). `--real` adds the real photos, drawings and scans (`../shared/real` or
$DIGIT_NBDEV_REAL; evaluation only: look at a candidate there only as the final judge) through `predict_many` with the
int8 copy. Run: `python bench/style_bench.py runs/candG,runs/candI --seed 5151` (about a minute a run on 2 cores)."""
from __future__ import annotations
import collections, importlib.util, json, os
from pathlib import Path
import numpy as np
from fastcore.script import call_parse

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
ROOT = Path(__file__).resolve().parents[1]

def synthetic(keras_path, seed: int, mix: str, n: int = 8000) -> dict:
    "Percent right on the validation split, held-out style digits (all and per style) and slanted validation digits."
    from digit_nbdev import digit_check_data as dc, styles
    from digit_nbdev.data import load_mnist, split_validation
    from digit_nbdev.model import load_model
    (x, y), _ = load_mnist()
    _, (xv, yv) = split_validation(x, y)
    rng = np.random.default_rng(seed)
    xs, ys, names = styles.style_digits(n, rng, source=(xv, yv), return_styles=True, mix=mix)
    leaning = np.stack([dc.slanted(img, rng) for img in xv])
    model = load_model(keras_path)
    right = lambda a, b: model.predict(np.asarray(a, np.float32)[..., None] / 255., batch_size=500, verbose=0).argmax(1) == b
    v, s, t = right(xv, yv), right(xs, ys), right(leaning, yv)
    pct = lambda a: round(100 * float(a.mean()), 2)
    return dict(valid=pct(v), styles=pct(s), slanted=pct(t), per_style={k: pct(s[names == k]) for k in styles.STYLE_MIXES[mix]})

def int8_copy(run: Path) -> Path:
    "The run's model as int8 LiteRT, by `bench/quant_bench.py`'s own conversion."
    spec = importlib.util.spec_from_file_location('quant_bench', ROOT/'bench'/'quant_bench.py')
    qb = importlib.util.module_from_spec(spec); spec.loader.exec_module(qb)
    return qb.quantised(run/'digit_cnn_int8.tflite', source=run/'digit_cnn.keras')

def mnist_test(paths: dict) -> dict:
    "Percent right on the 10,000 MNIST test digits, as the model sees them (the card's measure)."
    from digit_nbdev.data import load_mnist
    from digit_nbdev.runtime import LiteRTRunner
    _, (x, y) = load_mnist()
    return {k: round(100 * float((LiteRTRunner(str(p))(x.astype(np.float32)[..., None] / 255.).argmax(1) == y).mean()), 2) for k, p in paths.items()}

def real(model) -> dict:
    "Real single digits through `predict_many`: right per group, 'no digit' answers, unflagged answers right, the scans' confusions and their 4s' holes."
    from digit_nbdev import styles
    from digit_nbdev.predict import predict_many
    from digit_nbdev.robustness import real_set
    samples = [s for s in real_set() if s.group in ('real photo', 'real drawing', 'real scan')]
    preds = predict_many([s.data for s in samples], str(model))
    out = {g: f"{sum(p.digit == s.label for s, p in zip(samples, preds) if s.group == g)}/{sum(s.group == g for s in samples)}"
           for g in ('real photo', 'real drawing', 'real scan')}
    sure = [p.digit == s.label for s, p in zip(samples, preds) if p.status == 'ok' and not p.low_confidence]
    scans = [(s, p) for s, p in zip(samples, preds) if s.group == 'real scan']
    wrong = collections.Counter(f'{s.label}->{p.digit}' for s, p in scans if p.digit != s.label)
    # the shape the model was given, counted (never looked at one by one): closed holes in the scans' 4s, by the answer
    shape = lambda p: styles.holes(np.round(np.clip(p.processed, 0, 1) * 255).astype(np.uint8).squeeze())
    fours = collections.defaultdict(collections.Counter)
    for s, p in scans:
        if s.label == 4 and p.status == 'ok': fours[f'4->{p.digit}'][shape(p)] += 1
    return dict(out, no_digit=sum(p.status != 'ok' for p in preds), unflagged_right=f'{100 * np.mean(sure):.2f}% ({len(sure) - sum(sure)} wrong)',
                scan_errors=dict(wrong.most_common()), scan_fours_holes={k: dict(v) for k, v in sorted(fours.items())})

@call_parse
def main(runs: str,  # run directories, comma-separated (each a `finetune` output)
         seed: int = 5151,  # held-out style digits and slants: choose on one seed, report another
         mix: str = 'second',  # the style mix the held-out digits are drawn from (`styles.STYLE_MIXES`)
         real_too: bool = False):  # also the real images (evaluation only: a candidate's final judge)
    for run in [Path(r) for r in runs.split(',')]:
        row = dict(run=str(run), seed=seed, **synthetic(run/'digit_cnn.keras', seed, mix))
        int8 = int8_copy(run)
        row['mnist_test'] = mnist_test({'float': run/'digit_cnn.tflite', 'int8': int8})
        if real_too: row['real'] = real(int8)
        print(json.dumps(row))

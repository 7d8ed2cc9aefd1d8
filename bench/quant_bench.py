"""Quantisation benchmark (issue 16): the shipped digit model as an int8 LiteRT model, post-training, beside the float one.

The int8 model is converted from the shipped Keras model (`digit_cnn.keras`) with TFLiteConverter's full-integer
quantisation (float input and output, so the runners take it as they are), calibrated on `--calibration` MNIST
*training* digits as `predict` preprocesses them. Then, for both models: the model's CPU time per image on one thread
(interleaved, median of 5), and accuracy on MNIST test (through `predict_many`), the real images (`../shared/real`,
evaluation only) and the robustness set (200 per kind, seed 2026), as `robustness` reads them.
The rule of issue 16: ship it as the default only if MNIST test drops by <= 0.05 points and the real and robustness
sets by <= 0.2 points. Needs `[train]` (TensorFlow). Run: `python bench/quant_bench.py` (about 10 minutes on 2 cores);
the model is written to `--out`, the table to bench/results/quant_bench.md."""
from __future__ import annotations
import json, os, platform, tempfile, time
from pathlib import Path
import numpy as np
from fastcore.script import call_parse

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
ROOT = Path(__file__).resolve().parents[1]
RULE = dict(mnist=0.05, real=0.2, robust=0.2)  # the most each may drop, in points

def quantised(out: Path, calibration: int = 1000, seed: int = 0, source: Path | None = None) -> Path:
    "The Keras model at `source` (default: the shipped one) as an int8 LiteRT model at `out` (float in and out), calibrated on MNIST training digits, with the float model's card's temperature beside it."
    import tensorflow as tf
    from digit_nbdev.data import load_mnist
    from digit_nbdev.model import load_model, shipped_model_path
    from digit_nbdev.ink import preprocess_many
    from digit_nbdev.paper import QUICK_SIZE
    (xt, _), _ = load_mnist()
    picked = np.random.default_rng(seed).choice(len(xt), calibration, replace=False)
    # (the 28x28 the model sees: `predict`'s first look at each digit, made as `predict_many` makes it for MNIST-sized arrays)
    cal = np.stack([p for p, _ in preprocess_many(list(xt[picked]), QUICK_SIZE, whole=True) if p is not None]).astype(np.float32)[..., None]
    source = Path(source) if source else shipped_model_path('.keras')
    with tempfile.TemporaryDirectory() as d:
        load_model(source).export(d + '/sm', format='tf_saved_model', verbose=False)
        conv = tf.lite.TFLiteConverter.from_saved_model(d + '/sm')
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([cal[i:i + 1]] for i in range(len(cal)))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        out.parent.mkdir(parents=True, exist_ok=True); out.write_bytes(conv.convert())
    card = json.loads(source.with_suffix('.json').read_text())
    out.with_suffix('.json').write_text(json.dumps(dict(  # (its temperature is the float model's: `model_temperature` reads it)
        temperature=card['temperature'], quantised_from=source.name, quantisation='int8 post-training, float input and output',
        calibration=f'{calibration} MNIST training digits (seed {seed}) as predict sees them', command='python bench/quant_bench.py'), indent=1) + '\n')
    return out

def cpu_us(paths: dict, reps: int = 5) -> dict:
    "Each model's CPU time per image (us) on one thread, on MNIST test digits as `predict` gives them, interleaved."
    from digit_nbdev.data import load_mnist
    from digit_nbdev.predict import predict_many
    from digit_nbdev.runtime import LiteRTRunner
    x = load_mnist()[1][0][:2048]
    batch = np.stack([p.processed for p in predict_many(list(x))])[..., None].astype(np.float32)
    runners = {k: LiteRTRunner(p, num_threads=1) for k, p in paths.items()}
    got = {k: [] for k in paths}
    for _ in range(reps):
        for k, r in runners.items():
            r(batch[:64]); t = time.process_time(); r(batch); got[k].append((time.process_time() - t) / len(batch) * 1e6)
    return {k: float(np.median(v)) for k, v in got.items()}

def accuracy(model: str, real, robust) -> dict:
    "Percent right on MNIST test (`predict_many`), the real images and the robustness set (as `robustness` reads them)."
    from digit_nbdev.data import load_mnist
    from digit_nbdev.predict import predict_many
    from digit_nbdev.robustness import _ours
    _, (x, y) = load_mnist()
    out = dict(mnist=100 * float(np.mean([p.digit == t for p, t in zip(predict_many(list(x), model), y)])))
    for name, samples in (('real', real), ('robust', robust)):
        if samples: out[name] = 100 * float(np.mean([o == s.label for s, (o, _) in zip(samples, _ours(samples, model))]))
    return out

@call_parse
def main(out: str = str(ROOT/'runs'/'quantised'/'digit_cnn_int8.tflite'),  # where the int8 model (and its card) are written
         calibration: int = 1000,  # MNIST training digits to calibrate on
         results: str = str(ROOT/'bench'/'results'/'quant_bench.md')):
    from digit_nbdev.model import shipped_model_path
    from digit_nbdev.robustness_set import robustness_set
    from digit_nbdev.robustness import real_dir, real_set
    t0 = time.time()
    int8 = quantised(Path(out), calibration)
    paths = {'float': str(shipped_model_path('.tflite')), 'int8': str(int8)}
    cpu = cpu_us(paths)
    real = real_set() if real_dir() else []
    robust = robustness_set(200, seed=2026)
    acc = {k: accuracy(p, real, robust) for k, p in paths.items()}
    drop = {k: acc['float'][k] - acc['int8'][k] for k in acc['float']}
    ship = all(drop[k] <= RULE[k] for k in drop)
    rows = [f"| model CPU time per image, one thread (median of 5, interleaved) | {cpu['float']:.0f} us | {cpu['int8']:.0f} us ({cpu['float'] / cpu['int8']:.1f}x) | |",
            f"| file size | {Path(paths['float']).stat().st_size / 1e6:.2f} MB | {int8.stat().st_size / 1e6:.2f} MB | |"]
    names = dict(mnist='MNIST test (10,000, `predict_many`)', real=f'real images (`../shared/real`, {len(real):,}; evaluation only)',
                 robust=f'robustness set ({len(robust):,}: 200 per kind, seed 2026)')
    rows += [f"| {names[k]} | {acc['float'][k]:.2f}% | {acc['int8'][k]:.2f}% ({-drop[k]:+.2f} points) | drop <= {RULE[k]} points |" for k in acc['float']]
    table = '\n'.join([f"Machine: {platform.machine()}, {os.cpu_count()} cores; {time.strftime('%Y-%m-%d %H:%M')}; calibrated on {calibration:,} MNIST training digits; {time.time() - t0:.0f} s",
                       '', '| | float (shipped) | int8 | rule |', '|---|---|---|---|', *rows, '',
                       f"Verdict: {'within the rule: may ship as the default' if ship else 'outside the rule: not shipped'}."])
    print(table); Path(results).write_text(table + '\n')

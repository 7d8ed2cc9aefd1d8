"""Do two versions of digit_nbdev answer alike? Every field of `predict_many`'s predictions, on the sets a speed change
must not move (issue 16).

`python bench/same_answers.py dump OUT.pkl` (with PYTHONPATH = the side's tree) writes every `Prediction` field (the
28x28 image as a hash) of: the 10,000 MNIST test digits, the first 2,000 of them inverted, the robustness set (60 per
kind, seed 2026) and every real image (`real_dir()`: `$DIGIT_NBDEV_REAL` or `shared/real` beside the checkout; evaluation
only; left out with a message when absent).
`python bench/same_answers.py compare A.pkl B.pkl` prints, per set, how many predictions are bit-identical and which
fields differ beyond float tolerance (1e-6 relative), and exits 1 if any does. The inputs are made once and kept in
`--inputs_at` (a pickle) so both sides read the very same bytes."""
from __future__ import annotations
import hashlib, os, pickle, sys
from pathlib import Path
import numpy as np
from fastcore.script import Param, call_parse

FIELDS = 'status digit confidence probabilities low_confidence box groups widest pieces p_digit error processed'.split()

def fields(p) -> tuple:
    "A prediction's fields, comparable: floats as floats, the image as a sha1 of its float32 bytes."
    return (p.status, p.digit, float(p.confidence), np.asarray(p.probabilities, np.float64), p.low_confidence, p.box, p.groups,
            float(p.widest), p.pieces, float(p.p_digit), p.error, hashlib.sha1(np.ascontiguousarray(p.processed, np.float32).tobytes()).hexdigest())

def inputs(path: Path) -> dict:
    "The sets, made once and kept at `path`."
    if path.exists(): return pickle.loads(path.read_bytes())
    from digit_nbdev.data import load_mnist
    from digit_nbdev.robustness_set import robustness_set
    from digit_nbdev.robustness import real_dir, real_set
    (_, _), (x, _) = load_mnist()
    sets = {'mnist': list(x), 'inverted': list(255 - x[:2000]), 'robust': [s.data for s in robustness_set(60, seed=2026)]}
    if real_dir() is None: print('../shared/real not found: the real images are left out', file=sys.stderr)
    else: sets['real'] = [s.data for s in real_set()]
    path.write_bytes(pickle.dumps(sets))
    return sets

def compare(a: dict, b: dict) -> bool:
    "Print how the dumps `a` and `b` differ; True when every prediction agrees (floats to 1e-6)."
    same = True
    for k in a:
        if k not in b: print(k, 'missing in the second dump'); same = False; continue
        diffs, exact = {}, 0
        for i, (fa, fb) in enumerate(zip(a[k], b[k])):
            bits = True
            for n, va, vb in zip(FIELDS, fa, fb):
                if isinstance(va, (float, np.ndarray)):
                    bits &= bool(np.array_equal(va, vb))
                    if not np.allclose(va, vb, rtol=1e-6, atol=1e-7): diffs.setdefault(n, []).append(i)
                elif va != vb: diffs.setdefault(n, []).append(i); bits = False
            exact += bits
        print(f"{k}: {len(a[k]):,} vs {len(b[k]):,} predictions, {exact:,} bit-identical; differing fields: {({n: (len(v), v[:5]) for n, v in diffs.items()}) or 'none'}")
        same &= not diffs and len(a[k]) == len(b[k])
    print('IDENTICAL' if same else 'DIFFERENT')
    return same

@call_parse
def main(action: str,  # 'dump' (this tree's answers) or 'compare' (two dumps)
         dumps: Param("the dump to write ('dump'), or the two to compare", str, nargs='+'),
         inputs_at: str = str(Path(os.environ.get('TMPDIR', '/tmp'))/'digit_nbdev_same_answers.pkl')):  # the sets, made once
    if action == 'compare': sys.exit(0 if compare(*(pickle.loads(Path(d).read_bytes()) for d in dumps[:2])) else 1)
    from digit_nbdev.predict import predict_many
    Path(dumps[0]).write_bytes(pickle.dumps({k: [fields(p) for p in predict_many(v)] for k, v in inputs(Path(inputs_at)).items()}))

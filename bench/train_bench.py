"""Training benchmark (issue 3): how long the quick recipe takes to reach 99.5% MNIST test accuracy on this
machine, the full recipe's time and accuracy, and the original app's recipe beside them, measured in the
same run. Prints a table and writes it as markdown to `bench/results/train_bench.md`.

    .venv/bin/python bench/train_bench.py                     # ~15 min on 2 CPU cores
    .venv/bin/python bench/train_bench.py --skip-simple --skip-same-recipe   # quick and original only, ~7 min
    .venv/bin/python bench/train_bench.py --full              # also retrain the full recipe (+25-35 min)
    .venv/bin/python bench/train_bench.py --full --finetune   # and fine-tune it with style digits, the shipped recipe (+4 min)

Every recipe trains with `digit_nbdev.training.train` on the same data pipeline (55k training images,
5k validation split, the same augmentation). The test set is evaluated at the end of each epoch by a
callback of this benchmark only, to measure; no training decision uses it except the quick recipe's
stop once the target is reached. The time spent on those test evaluations is not counted in the wall time.
The shipped model is the full recipe's model fine-tuned with style digits (`digit_nbdev.training.finetune`):
without --full the table reads both from the shipped model card, with --finetune it measures the fine-tune too.
"""
from __future__ import annotations
import json, os, sys, tempfile, time, datetime as dt
from pathlib import Path
import numpy as np
from digit_nbdev.core import script  # fastcore's call_parse parser, also taking --flag-name

HERE = Path(__file__).resolve().parent
RESULTS = HERE/'results'/'train_bench.md'

def _recipes(epochs: int, target: float):
    "name -> (arch, keyword arguments of `train`, description, stop at target?)"
    original = dict(schedule='plateau', lr_max=1e-3, patience=5)  # Adam default lr, ReduceLROnPlateau, early stopping
    return {
        'quick': ('cnn330k', dict(schedule='cosine', lr_max=2e-3, patience=None),
                  f'Adam 2e-3, 1 warm-up epoch + cosine compressed to {epochs} epochs, stops at {target:.2%} test accuracy', True),
        'original app': ('original', original,
                         'Adam 1e-3, ReduceLROnPlateau(val_loss, 0.5, patience 2), early stopping (val_loss, patience 5, best weights)', False),
        'original app, Keras simple CNN': ('simple', original, 'the original app\'s settings on the Keras "simple MNIST convnet"', False),
        'original app, cnn330k': ('cnn330k', original, "the original app's settings on our CNN: the architecture alone", False),
    }

def _monitor(x_test, y_test, target: float, stop: bool):
    "A Keras callback recording test accuracy after each epoch (timed apart from training); optionally stops at `target`."
    import keras
    class TestMonitor(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.t0, self.eval_s, self.epochs, self.reached, self.first = time.perf_counter(), 0., [], None, None
        def on_epoch_end(self, epoch, logs=None):
            self.first = epoch if self.first is None else self.first
            epoch -= self.first  # a fine-tune's epochs are numbered after its base's
            t_train = time.perf_counter() - self.t0 - self.eval_s
            t = time.perf_counter()
            acc = float((self.model.predict(x_test, batch_size=1000, verbose=0).argmax(1) == y_test).mean())
            self.eval_s += time.perf_counter() - t
            lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            self.epochs.append(dict(epoch=epoch + 1, seconds=round(t_train, 1), test_accuracy=acc,
                                    val_accuracy=(logs or {}).get('val_accuracy'), lr=lr, load=os.getloadavg()[0]))
            print(f"  [bench] epoch {epoch + 1}: {t_train:6.1f} s of training, test accuracy {acc:.2%}, lr {lr:.2g}", flush=True)
            if self.reached is None and acc >= target:
                self.reached = dict(epoch=epoch + 1, seconds=round(t_train, 1), test_accuracy=acc)
                if stop: self.model.stop_training = True
    return TestMonitor()

def run_recipe(name: str, arch: str, kw: dict, desc: str, stop: bool, epochs: int, target: float, data,
               batch_size: int = 128, out_dir=None, base=None) -> dict:
    "Train one recipe (fine-tune `base` if given) in `out_dir` or a temporary directory and return its table row."
    import keras
    from digit_nbdev.training import finetune, train
    x_test = data[1][0].astype(np.float32)[..., None] / 255.
    mon = _monitor(x_test, data[1][1], target, stop)
    print(f"\n== {name}: {arch}, {epochs} epochs, {desc}", flush=True)
    keras.backend.clear_session()
    with tempfile.TemporaryDirectory() as d:
        d = out_dir or d
        if base: finetune(d, base, epochs=epochs, batch_size=batch_size, data=data, verbose=2, callbacks=[mon], **kw)
        else: train(epochs=epochs, out_dir=d, arch=arch, batch_size=batch_size, data=data, resume=False,
                    verbose=2, callbacks=[mon], **kw)
        card = json.loads((Path(d)/'digit_cnn.json').read_text())
    n = len(mon.epochs)
    secs = mon.reached['seconds'] if (stop and mon.reached) else mon.epochs[-1]['seconds']
    return dict(recipe=name, arch=arch, params=card['parameters'], macs=card['multiply_adds_per_image'],
                epochs=n, epochs_planned=epochs, wall_s=secs, s_per_epoch=secs / n, test_accuracy=card['test_accuracy'],
                reached=mon.reached, per_epoch=mon.epochs, description=desc, measured=True, batch_size=batch_size,
                load=round(float(np.mean([e['load'] for e in mon.epochs])), 1))

def _card_row(name: str, card: dict, source: str, arch: str, params: int, macs: int) -> dict:
    "A table row from a model card (or a fine-tune's card's `base` entry)."
    r = card.get('recipe', {})
    command = card['command'].splitlines()[-1]  # a fine-tune's card gives its base's command first
    return dict(recipe=name, arch=r.get('arch', arch), params=params, macs=macs, epochs=card['epochs_run'],
                epochs_planned=r.get('epochs'), wall_s=card['wall_time_seconds'],
                s_per_epoch=card['wall_time_seconds'] / card['epochs_run'], test_accuracy=card['test_accuracy'],
                reached=None, per_epoch=None, measured=False, batch_size=r.get('batch_size'),
                description=f"from {source}: `{command}` ({card.get('created', '?')})")

def rows_from_card(path) -> list:
    "The full recipe's row and, for a fine-tuned model, the fine-tune's, read from a model card (the shipped one by default)."
    path = Path(path)
    if not path.is_file(): return []
    card = json.loads(path.read_text())
    size = dict(arch=card['architecture'], params=card['parameters'], macs=card['multiply_adds_per_image'])
    if 'base' not in card: return [_card_row('full (shipped model)', card, f'the model card {path.name}', **size)]
    return [_card_row('full (base of the shipped model)', card['base'], f"the model card {path.name}, its base", **size),
            _card_row('fine-tune, style digits (shipped model)', card, f'the model card {path.name}', **size)]

def _fmt_time(s: float) -> str: return f"{s:.0f} s ({s/60:.1f} min)"

def table(rows, target: float) -> str:
    "The results as a markdown table."
    out = ['| recipe | arch | params | MACs/image | epochs | wall time | s/epoch | test accuracy |',
           '|---|---|---:|---:|---:|---:|---:|---:|']
    for r in rows:
        acc = f"{r['test_accuracy']:.2%}"
        if r['reached'] is None and r['measured']: acc += f" (never {target:.1%})"
        if r['reached'] and r['reached']['epoch'] != r['epochs']:
            acc += f" ({target:.1%} first at epoch {r['reached']['epoch']}, {r['reached']['seconds']:.0f} s)"
        wall = _fmt_time(r['wall_s']) + (f" to {target:.1%}" if r['reached'] and r['recipe'] == 'quick' else '')
        out.append(f"| {r['recipe']} | {r['arch']} | {r['params']:,} | {r['macs']/1e6:.1f} M | {r['epochs']} | {wall} "
                   f"| {r['s_per_epoch']:.1f} | {acc} |")
    return '\n'.join(out)

def per_epoch_table(rows) -> str:
    "Test accuracy after each epoch of each measured recipe (with the training seconds so far)."
    rows = [r for r in rows if r['per_epoch']]
    if not rows: return ''
    n = max(len(r['per_epoch']) for r in rows)
    out = ['| epoch | ' + ' | '.join(r['recipe'] for r in rows) + ' |', '|---:|' + '---:|' * len(rows)]
    for e in range(n):
        cells = [f"{r['per_epoch'][e]['test_accuracy']:.2%} ({r['per_epoch'][e]['seconds']:.0f} s)"
                 if e < len(r['per_epoch']) else '' for r in rows]
        out.append(f"| {e + 1} | " + ' | '.join(cells) + ' |')
    return '\n'.join(out)

def _machine() -> str:
    from digit_nbdev.model_card import cpu_name, _versions
    v = _versions()
    return (f"{os.cpu_count()} cores of {cpu_name()}, no GPU; python {v.get('python')}, "
            f"tensorflow {v.get('tensorflow-cpu') or v.get('tensorflow')}, keras {v.get('keras')}")

def _shared_cpu_note(rows) -> str:
    "A note when the full run's time per epoch is well above the quick recipe's (same model, same batches)."
    quick = next((r for r in rows if r['recipe'] == 'quick'), None)
    full = next((r for r in rows if r['recipe'].startswith('full') and not r['measured']), None)
    if not (quick and full and full['arch'] == quick['arch'] and full['s_per_epoch'] > 1.25 * quick['s_per_epoch']): return ''
    return (f"\n\nThe full run's {full['s_per_epoch']:.0f} s per epoch, against {quick['s_per_epoch']:.0f} s for the same model "
            f"and batches in this run, says the CPU was shared with more work during that run: at this run's pace its "
            f"{full['epochs']} epochs would take about {full['epochs'] * quick['s_per_epoch'] / 60:.0f} min.")

def markdown(rows, target: float, command: str, total_s: float, date: str = None) -> str:
    load = lambda r: f" (1-min load average during the run {r['load']:.1f})" if r.get('load') else ''
    notes = '\n'.join(f"- **{r['recipe']}**: {r['description']}{load(r)}" for r in rows)
    date = date or dt.date.today().isoformat()
    data = json.dumps(dict(target=target, rows=rows, command=command, total_s=round(total_s), date=date), default=float)
    return f"""# Training benchmark

Measured by `{command}` on {date}: {_machine()}. The whole run took {total_s/60:.0f} min.

{table(rows, target)}

Wall time is training time (batches, the validation split, callbacks); it leaves out the benchmark's own
test-set evaluations, saving and the LiteRT export. All recipes use the same data pipeline: 55k training
images, a 5k validation split, batches of 128, random rotation, zoom, shear and shift. Test accuracy is on
the 10k MNIST test images, of the model the recipe returns (for early-stopping recipes, the best epoch by
validation loss). Times are of a machine other work may share: this benchmark alone keeps the load
average near 2 on 2 cores, and each measured recipe lists its average below.{_shared_cpu_note(rows)}

{notes}

Test accuracy after each epoch (training seconds so far):

{per_epoch_table(rows)}

<!-- train_bench.json {data} -->
"""

def read_results(path=RESULTS) -> dict | None:
    "The machine-readable results embedded in a results file written by this script."
    path = Path(path)
    if not path.is_file(): return None
    text = path.read_text()
    start = text.find('<!-- train_bench.json ')
    if start < 0: return None
    return json.loads(text[start + len('<!-- train_bench.json '):text.index(' -->', start)])

@script
def main(
    epochs: int = 8,  # epochs of the quick recipe (its cosine schedule is compressed to this), and of the original recipes
    target: float = 0.995,  # test accuracy the quick recipe stops at
    skip_original: bool = False,  # don't run the original app's recipe
    skip_simple: bool = False,  # don't run the original app's settings on the Keras simple CNN
    skip_same_recipe: bool = False,  # don't run the original app's settings on cnn330k (the architectures compared alone)
    full: bool = False,  # also retrain the full recipe (45 epochs, ~25 min) instead of reading the shipped model card
    full_epochs: int = 45,  # epochs of the full recipe with --full
    finetune: bool = False,  # also fine-tune with style digits (the shipped recipe, ~4 min): the --full run's model, or --base
    base: str = None,  # the model to fine-tune without --full: a 45-epoch digit_cnn.keras (the shipped one is fine-tuned already)
    card: str = None,  # model card for the full recipe's row (default: the shipped digit_nbdev/models/digit_cnn.json)
    out: str = str(RESULTS),  # markdown results file ('' for none)
    seed: int = 42,  # seed for the split, the initial weights and the augmentation
    n_train: int = None,  # train on this many images only: a smoke test of the script, not a benchmark
):
    "Time the quick recipe to TARGET test accuracy, beside the original app's recipe and the full recipe."
    from digit_nbdev.data import load_mnist
    from digit_nbdev.model import shipped_model_path
    t_start = time.perf_counter()
    command = 'python bench/train_bench.py ' + ' '.join(sys.argv[1:])
    data = load_mnist()
    rows = []
    for name, (arch, kw, desc, stop) in _recipes(epochs, target).items():
        if ((arch == 'original' and skip_original) or (arch == 'simple' and skip_simple)
            or (name == 'original app, cnn330k' and skip_same_recipe)): continue
        rows.append(run_recipe(name, arch, dict(kw, seed=seed, n_train=n_train), desc, stop, epochs, target, data))
    if finetune and not (full or base): sys.exit('train_bench: --finetune needs --full or --base (a 45-epoch model)')
    keep = tempfile.TemporaryDirectory()  # the full run's model, for the fine-tune
    if full:
        r = run_recipe('full', 'cnn330k', dict(seed=seed, n_train=n_train, patience=None), f"the full recipe, {full_epochs} epochs",
                       False, full_epochs, target, data, out_dir=keep.name)
        rows.append(r)
        base = base or Path(keep.name)/'digit_cnn.keras'
    else:
        found = rows_from_card(card or shipped_model_path('.json'))
        rows += found if not finetune else found[:1]
        if not found: print(f"\n(no model card at {card or shipped_model_path('.json')}: the full recipe's row is left out)")
    if finetune:
        from digit_nbdev.training import FINETUNE_EPOCHS
        rows.append(run_recipe('fine-tune, style digits', 'cnn330k', dict(n_train=n_train), f'the shipped fine-tune of {base}',
                               False, FINETUNE_EPOCHS, target, data, base=base))
    keep.cleanup()
    total = time.perf_counter() - t_start
    print('\n' + table(rows, target))
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(markdown(rows, target, command, total))
        print(f"\nwritten to {out}")

if __name__ == '__main__': main()

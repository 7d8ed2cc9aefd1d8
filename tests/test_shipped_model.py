"""The model shipped in digit_nbdev/models/: its accuracy on the full MNIST test set, agreement with its
model card, the card's contents (its temperature and style recipe), and the LiteRT copy matching the Keras model. About
20 s on 2 CPU cores."""
import json
import numpy as np
import pytest
from digit_nbdev.data import MNIST_FILES, load_mnist
from digit_nbdev.model import shipped_model_path, load_model

BAR = 0.9965  # issue 3: >= 99.65% on the 10k test images, single model (the fine-tuned model passes it by one image)
CARD_FIELDS = ('test_accuracy', 'per_class_test_accuracy', 'parameters', 'epochs_run', 'wall_time_seconds',
               'cpu', 'versions', 'data_sha256', 'command')

@pytest.fixture(scope='module')
def card():
    path = shipped_model_path('.json')
    assert path.is_file(), f"no model card at {path}"
    return json.loads(path.read_text())

@pytest.fixture(scope='module')
def test_set():
    return load_mnist()[1]

@pytest.fixture(scope='module')
def keras_model():
    return load_model()  # the shipped .keras, loaded in safe mode

@pytest.fixture(scope='module')
def keras_probs(keras_model, test_set):
    x = test_set[0].astype(np.float32)[..., None] / 255.
    return keras_model.predict(x, batch_size=1000, verbose=0)

def test_shipped_files_exist():
    for suffix in ('.keras', '.tflite', '.json', '.md'): assert shipped_model_path(suffix).is_file(), suffix
    assert (shipped_model_path().parent/'history.csv').is_file()

def test_contract(keras_model):
    assert keras_model.input_shape == (None, 28, 28, 1) and keras_model.output_shape == (None, 10)

def test_accuracy_meets_bar_and_matches_card(keras_probs, test_set, card):
    y = test_set[1]
    assert len(y) == 10_000
    acc = float((keras_probs.argmax(1) == y).mean())
    assert acc >= BAR, f"shipped model: {acc:.2%} < {BAR:.2%}"
    assert abs(acc - card['test_accuracy']) <= 0.0002, f"measured {acc:.4%}, card says {card['test_accuracy']:.4%}"
    assert np.allclose(keras_probs.sum(1), 1, atol=1e-4)

def test_per_class_matches_card(keras_probs, test_set, card):
    pred, y = keras_probs.argmax(1), test_set[1]
    per_class = [float((pred[y == c] == c).mean()) for c in range(10)]
    assert np.allclose(per_class, card['per_class_test_accuracy'], atol=0.002)

def test_card_fields(card, keras_model):
    missing = [k for k in CARD_FIELDS if card.get(k) in (None, '', [], {})]
    assert not missing, f"model card lacks {missing}"
    assert len(card['per_class_test_accuracy']) == 10 and all(0 <= a <= 1 for a in card['per_class_test_accuracy'])
    assert card['parameters'] == keras_model.count_params()
    assert card['epochs_run'] >= 1 and card['wall_time_seconds'] > 0
    assert card['data_sha256'] == MNIST_FILES
    assert 'keras' in card['versions'] and ('tensorflow' in card['versions'] or 'tensorflow-cpu' in card['versions'])
    assert card['command'].startswith('digit_train')
    assert f"{card['test_accuracy']*100:.2f}%" in shipped_model_path('.md').read_text()

def test_litert_matches_keras(keras_probs, test_set):
    from digit_nbdev.runtime import LiteRTRunner
    x = test_set[0][:500].astype(np.float32)[..., None] / 255.
    lite = LiteRTRunner(shipped_model_path('.tflite'))(x)
    assert lite.shape == (500, 10)
    err = float(np.abs(lite - keras_probs[:500]).max())
    assert err <= 1e-5, f"LiteRT differs from Keras by up to {err:.2g}"

def test_card_temperature_and_styles(card):
    "The card carries the temperature the runtime applies (fitted on the validation split) and the fine-tune's style recipe."
    from digit_nbdev.styles import DIGIT_STYLES
    assert 1.0 <= card['temperature'] <= 3.0, card['temperature']  # over-confident on its few errors: T > 1, but not wildly
    assert card['calibration']['temperature'] == card['temperature']
    assert card['calibration']['ece'][1] < card['calibration']['ece'][0]
    assert 0 < card['recipe']['style_share'] < 0.5 and set(card['recipe']['styles']) == set(DIGIT_STYLES)
    assert card['base']['test_accuracy'] >= BAR and len(card['base']['sha256']) == 64
    md = shipped_model_path('.md').read_text()
    assert f"**{card['temperature']:.2f}**" in md and 'style digits' in md and 'fine-tuned from' in md

def test_temperature_fits_validation(keras_model, card):
    "The card's temperature is the one fitted on the validation split (the 5k digits model selection used)."
    from digit_nbdev.data import split_validation
    from digit_nbdev.evaluation import fit_temperature
    (x, y), _ = load_mnist()
    _, (x_va, y_va) = split_validation(x, y)
    probs = keras_model.predict(x_va.astype(np.float32)[..., None] / 255., batch_size=1000, verbose=0)
    assert abs(fit_temperature(probs, y_va) - card['temperature']) <= 0.01

def test_int8_runtime_within_issue_16s_rule(test_set):
    "`predict` runs the int8 copy of the model: on MNIST test, through `predict_many`, at most 0.05 points below the float model (issue 16's rule; the real and robustness sets: bench/quant_bench.py)."
    from digit_nbdev.predict import predict_many
    from digit_nbdev.runtime import SHIPPED_RUNTIME, get_runner
    x, y = test_set
    assert get_runner().path.name == f'{SHIPPED_RUNTIME}.tflite' and SHIPPED_RUNTIME != 'digit_cnn'
    right = lambda model: np.mean([p.digit == t for p, t in zip(predict_many(list(x), model), y)])
    int8, float32 = right(None), right(str(shipped_model_path('.tflite')))
    assert int8 >= float32 - 0.0005 and int8 >= 0.993, (int8, float32)

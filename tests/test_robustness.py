"""Issue 4's robustness promises on a set the notebooks never saw (its own seed): accuracy per group of kinds,
every blank page "no digit", and the original app's path far behind. Targets not yet met are printed and
pinned at the measured floor (`FLOORS`), so that nothing gets worse unnoticed."""
import pytest
from digit_nbdev.robustness_set import robustness_set
from digit_nbdev.robustness import evaluate, summary, markdown_table, TARGETS, FLOORS

@pytest.fixture(scope='module')
def outcomes():
    return evaluate(robustness_set(n_per_kind=100, seed=99))

def test_each_group_holds_its_floor(outcomes):
    rows = summary(outcomes, 'group')
    print(markdown_table(rows, TARGETS))
    assert {r['name'] for r in rows} == set(TARGETS)
    for r in rows: assert r['ours'] >= FLOORS[r['group']], r

def test_blank_pages_never_get_a_digit(outcomes):
    blanks = [o for o in outcomes if o.group == 'blank']
    assert len(blanks) == 100 and all(o.ours is None for o in blanks), [o.filename for o in blanks if o.ours is not None]

def test_original_app_path_is_far_behind(outcomes):
    for r in summary(outcomes, 'group'): assert r['naive'] < 0.5 * r['ours'], r

# The real images of ../shared/real (evaluation only; see its README): floors at what is measured now.
REAL_FLOORS = {'real photo': 1.0, 'real drawing': 1.0, 'real scan': 0.99, 'real number': 1.0}

@pytest.fixture(scope='module')
def real_outcomes():
    from digit_nbdev.robustness import real_dir, real_set
    if real_dir() is None: pytest.skip("no real images: ../shared/real (beside the checkout) or $DIGIT_NBDEV_REAL is absent")
    return evaluate(real_set())

def test_real_images_hold_their_floors(real_outcomes):
    rows = {r['name']: r for r in summary(real_outcomes, 'group')}
    print(markdown_table(list(rows.values())))
    assert rows['real scan']['n'] == 4163 and rows['real photo']['n'] + rows['real drawing']['n'] == 84
    for group, floor in REAL_FLOORS.items(): assert rows[group]['ours'] >= floor, rows[group]

def test_no_real_digit_is_answered_no_digit(real_outcomes):
    "Issue 12: a digit a person wrote is never 'no digit' (the digit check and its threshold, `digit_check.DIGIT_CHECK`, were chosen on synthetic data only)."
    singles = [o for o in real_outcomes if o.group in ('real photo', 'real drawing', 'real scan')]
    assert len(singles) == 4247 and not [o.filename for o in singles if o.ours is None]

def test_unflagged_answers_on_real_digits_can_be_trusted():
    "Issue 12: of the real single digits' answers not flagged as unsure, >= 99.7% are right, and most errors carry the flag (`predict.TRUST` was chosen on synthetic data only)."
    from digit_nbdev.robustness import real_dir, real_set
    from digit_nbdev.predict import predict_many
    if real_dir() is None: pytest.skip("no real images: ../shared/real (beside the checkout) or $DIGIT_NBDEV_REAL is absent")
    singles = [s for s in real_set() if s.group in ('real photo', 'real drawing', 'real scan')]
    preds = predict_many([s.data for s in singles])
    sure = [s.label == p.digit for s, p in zip(singles, preds) if p.status == 'ok' and not p.low_confidence]
    wrong = [p.low_confidence for s, p in zip(singles, preds) if p.status == 'ok' and p.digit != s.label]
    assert sum(sure) / len(sure) >= 0.997, (len(sure) - sum(sure), len(sure))
    assert sum(wrong) > len(wrong) / 2, (sum(wrong), len(wrong))
    assert len(sure) >= 0.9 * len(singles), len(sure)  # the flag's cost: most right answers stay unflagged

def test_a_bold_marker_one_across_the_photo_is_read():
    "r0052.jpg: a 1 in bold marker from the top of the photo to the bottom (it was 'no digit': taken for a ruled line)."
    from digit_nbdev.robustness import real_dir
    from digit_nbdev.predict import predict
    if real_dir() is None: pytest.skip("no real images: ../shared/real (beside the checkout) or $DIGIT_NBDEV_REAL is absent")
    p = predict(real_dir()/'photos'/'r0052.jpg')
    assert (p.status, p.digit) == ('ok', 1), p

def test_pages_of_numbers_hold_their_floor():
    "Issue 13: photographed pages (some ruled, turned, on a table, in small writing, with small or tall digits), read top to bottom; a seed the notebooks never use."
    from digit_nbdev.robustness_set import page_samples
    from digit_nbdev.page import read
    from digit_nbdev.robustness import numbers_read
    pages = page_samples(40, seed=99)
    right = sum(numbers_read(read(p.data).text, p.label) for p in pages)
    total = sum(len(p.label.split()) for p in pages)
    print(f'pages: {right} of {total} numbers read exactly')
    assert right / total >= 0.78, (right, total)  # measured 83.3% (95 of 114; the harder generator of issue 13's real failure kinds), less a margin

"""The promises of issue 4 on a robustness set the notebooks never saw (its own seed): accuracy per group of
kinds against the targets, every blank page "no digit", and the original app's path far behind."""
import pytest
from digit_nbdev.photos import robustness_set
from digit_nbdev.robustness import evaluate, summary, TARGETS, markdown_table

@pytest.fixture(scope='module')
def outcomes():
    return evaluate(robustness_set(n_per_kind=100, seed=99))

def test_each_group_meets_its_target(outcomes):
    rows = summary(outcomes, 'group')
    print(markdown_table(rows, TARGETS))
    assert {r['name'] for r in rows} == set(TARGETS)
    for r in rows: assert r['ours'] >= TARGETS[r['group']], r

def test_blank_pages_never_get_a_digit(outcomes):
    blanks = [o for o in outcomes if o.group == 'blank']
    assert blanks and all(o.ours is None for o in blanks), [o.filename for o in blanks if o.ours is not None]

def test_original_app_path_is_far_behind(outcomes):
    for r in summary(outcomes, 'group'):
        if r['group'] != 'fonts': assert r['naive'] < 0.5 * r['ours'], r

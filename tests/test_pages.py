"""Issue 13 on real images (evaluation only; skipped when `../shared/real` is absent): the photographed pages keep
their floor, and the default reading does not turn a single handwritten digit into a number; and on synthetic pages,
a page turned half round is read upright."""
import pytest

def _real():
    from digit_nbdev.robustness import real_dir, real_set
    if real_dir() is None: pytest.skip("no real images: ../shared/real (beside the checkout) or $DIGIT_NBDEV_REAL is absent")
    return real_set()

def test_real_pages_hold_their_floor():
    "The three photographed pages (two with the table round the sheet, one stored sideways): numbers read exactly, in order."
    from digit_nbdev.page import read
    from digit_nbdev.robustness import numbers_read
    pages = [s for s in _real() if s.group == 'real page']
    right = sum(numbers_read(read(s.data).text, s.label) for s in pages)
    print(f'real pages: {right} of {sum(len(s.label.split()) for s in pages)} numbers read exactly')
    assert right >= 6, right  # measured 6 of 10 (it was 0)

def test_single_digits_are_not_read_as_numbers():
    "4,163 scans and 84 photos and drawings of one digit each: `read` (the CLI's default) answers each with one digit."
    from digit_nbdev.page import Kind, read_many
    singles = [s for s in _real() if s.group in ('real scan', 'real photo', 'real drawing')]
    kinds = [r.kind for r in read_many([s.data for s in singles])]
    numbers = [s.filename for s, k in zip(singles, kinds) if k in (Kind.NUMBER, Kind.NUMBERS)]
    print(f'{len(numbers)} of {len(singles)} single digits read as numbers: {numbers}')
    assert len(numbers) <= 2, numbers  # measured 2 (a 0 written as two arcs read '10', a 7 with a bar across it); it was 9

def test_pages_turned_half_round_are_read_upright():
    "Synthetic pages of MNIST test digits (seed 5: neither the orientation CNN's training nor the benchmark's), stored upright or turned half round: `read_page` turns them upright (no real images needed)."
    import numpy as np
    from digit_nbdev.data import load_mnist
    from digit_nbdev.image_files import upload_bytes
    from digit_nbdev.number_photos import number_page
    from digit_nbdev.page import read_page
    _, (x, _) = load_mnist()
    rng, wrong = np.random.default_rng(5), []
    for i in range(30):
        numbers = [[x[j] for j in rng.choice(len(x), rng.integers(2, 6))] for _ in range(rng.integers(2, 5))]
        turns = 2 * (i % 2)
        r = read_page(upload_bytes(number_page(numbers, seed=rng, turns=turns)))
        if r.turns != turns: wrong.append((i, r.turns, r.text))
    print(f'{len(wrong)} of 30 pages turned the wrong way: {wrong}')
    assert len(wrong) <= 2, wrong  # measured 1: a page where only one '1' was found, either way up

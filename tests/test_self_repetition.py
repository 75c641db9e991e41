"""Repetition of a text's own 4-grams (a loop) is measured apart from copying of the source."""

from lstm_core.memorization import analyze, self_repeated_fraction

SOURCE = "the keeper climbed the stairs of the tower and lit the lamp at dusk".split()


def test_a_crafted_loop_repeats_itself_but_copies_little():
    loop = "the tower of the tower of the tower of the tower of the tower".split()
    report = analyze(loop, SOURCE)
    # 14 words, 11 4-grams; the first three ("the tower of the", "tower of the tower",
    # "of the tower of") are new, every later one repeats one of them.
    assert report.self_repeated_4gram_fraction == 8 / 11
    assert report.copied_4gram_fraction == 0.0  # "of the tower" is in the source, no 4-gram is
    assert report.longest_copied_span == 3


def test_recitation_without_a_loop_repeats_nothing():
    report = analyze(SOURCE[2:], SOURCE)
    assert report.copied_4gram_fraction == 1.0
    assert report.self_repeated_4gram_fraction == 0.0


def test_short_and_empty_texts():
    assert self_repeated_fraction([]) == 0.0
    assert self_repeated_fraction("a b c".split()) == 0.0
    assert self_repeated_fraction("a b a b a b".split(), n=2) == 3 / 5
    assert analyze([], SOURCE).self_repeated_4gram_fraction == 0.0

import pytest

from tfaccel.data import (
    bleu,
    chrf,
    edit_distance,
    phoneme_error_rate,
    word_error_rate,
)

TOMATO_EY = ("T", "AH", "M", "EY", "T", "OW")
TOMATO_AA = ("T", "AH", "M", "AA", "T", "OW")


@pytest.mark.parametrize(
    "a, b, expected",
    [("kitten", "sitting", 3), ("", "abc", 3), ("abc", "abc", 0), ("ab", "ba", 2)],
)
def test_edit_distance(a, b, expected):
    assert edit_distance(a, b) == expected
    assert edit_distance(b, a) == expected


def test_edit_distance_on_phone_tuples():
    assert edit_distance(("K", "AE", "T"), ("K", "AA", "T", "S")) == 2


def test_wer_accepts_any_reference():
    predictions = [TOMATO_AA, ("K", "AE", "T"), ["D", "AO", "G"]]
    references = [
        [TOMATO_EY, TOMATO_AA],
        [("K", "AE", "T", "S")],
        [("D", "AO", "G")],
    ]
    assert word_error_rate(predictions, references) == pytest.approx(1 / 3)


def test_per_uses_closest_reference():
    predictions = [TOMATO_AA, ("K", "AE", "T")]
    references = [[TOMATO_EY, TOMATO_AA], [("K", "AE", "T", "S")]]
    # 0 edits against TOMATO_AA (6 phones) + 1 edit against 4 phones.
    assert phoneme_error_rate(predictions, references) == pytest.approx(1 / 10)


def test_per_tie_goes_to_shorter_reference():
    # Distance 1 to both; the shorter reference (1 phone) is chosen.
    assert phoneme_error_rate([("A", "B")], [[("A", "B", "C"), ("A",)]]) == 1.0


def test_metrics_reject_length_mismatch():
    with pytest.raises(ValueError, match="len"):
        word_error_rate([("A",)], [])
    with pytest.raises(ValueError, match="len"):
        bleu(["a"], ["a", "b"])


def test_bleu_and_chrf():
    text = ["en el principio crió dios los cielos y la tierra"]
    assert bleu(text, text) == pytest.approx(100.0)
    assert chrf(text, text) == pytest.approx(100.0)
    assert bleu(["xyz qqq"], text) == pytest.approx(0.0)
    assert 0.0 < chrf(["en el principio"], text) < 100.0

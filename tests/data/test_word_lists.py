"""Unlabelled words for distillation: Debian's word lists minus CMUdict."""

import pytest

from tfaccel import data, tasks
from tfaccel.errors import UserError


def test_words_of_any_cmudict_split_and_foreign_spellings_are_left_out(tmp_path):
    words = tmp_path / "words"
    words.write_text(
        "Tomato\nzyzzyvas\nnaïve\nsmörgåsbord\nzyzzyvas\nO'Neill's\n\n" + "a" * 40
    )
    kept = data.unlabelled_words(
        exclude={"tomato"},
        alphabet="abcdefghijklmnopqrstuvwxyz'",
        max_length=32,
        paths=[words],
    )
    assert kept == ["o'neill's", "zyzzyvas"]


def test_limit_keeps_an_even_share(tmp_path):
    words = tmp_path / "words"
    words.write_text(
        "\n".join(f"w{chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(100))
    )
    kept = data.unlabelled_words(
        set(), "abcdefghijklmnopqrstuvwxyz", 32, [words], limit=10
    )
    assert len(kept) == 10 and kept == sorted(kept) and kept[0] == "waa"


def test_a_missing_word_list_names_the_debian_packages(tmp_path):
    with pytest.raises(UserError, match="apt-get install wamerican wbritish"):
        data.unlabelled_words(set(), "abc", 32, [tmp_path / "american-english"])


def test_g2p_unlabelled_words_are_real_and_in_no_split():
    task = tasks.get_task("g2p")
    words = task.unlabelled_sources()
    # wamerican + wbritish 2020.12.07: 49,953 lower-case words CMUdict lacks.
    assert 45_000 < len(words) < 55_000
    assert not set(words) & data.cmudict_words()
    for split in ("train", "valid", "test"):
        assert not set(words) & set(task.sources(split))
    assert {"raggedness", "unpronounceable", "sibilant"} <= set(words)
    assert len(task.unlabelled_sources(limit=500)) == 500


def test_translation_has_no_unlabelled_inputs():
    task = tasks.TranslationTask.__new__(tasks.TranslationTask)
    with pytest.raises(UserError, match="no unlabelled inputs"):
        task.unlabelled_sources()

"""Accuracy metrics: WER and PER for G2P, BLEU and chrF for translation."""


def edit_distance(a, b):
    """Returns the Levenshtein distance between sequences `a` and `b`.

    Insertions, deletions and substitutions each cost 1.

    Example:

    >>> edit_distance(("K", "AE", "T"), ("K", "AA", "T", "S"))
    2
    """
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y))
            )
        previous = current
    return previous[-1]


def _check_lengths(predictions, references):
    if len(predictions) != len(references) or not predictions:
        raise ValueError(
            "`predictions` and `references` must be non-empty and of the same "
            f"length. Received: len(predictions)={len(predictions)}, "
            f"len(references)={len(references)}"
        )


def word_error_rate(predictions, references):
    """Returns the fraction of words whose prediction matches no reference.

    Args:
        predictions: list of predicted phone sequences, one per word.
        references: list of lists of acceptable pronunciations, one list per
            word; a word is correct if its prediction equals any of them.

    Returns:
        WER as a float in [0, 1].

    Example:

    >>> word_error_rate([("A",), ("B",)], [[("A",)], [("C",), ("D",)]])
    0.5
    """
    _check_lengths(predictions, references)
    errors = sum(
        tuple(pred) not in {tuple(ref) for ref in refs}
        for pred, refs in zip(predictions, references, strict=True)
    )
    return errors / len(predictions)


def _closest_reference(prediction, refs):
    """Returns `(distance, length)` for the reference closest to `prediction`.

    Ties in distance go to the shorter reference, then to the earlier one.
    """
    return min((edit_distance(prediction, ref), len(ref)) for ref in refs)


def phoneme_error_rate(predictions, references):
    """Returns the phoneme error rate against the closest reference.

    For each word, the reference with the smallest edit distance to the
    prediction is chosen (ties go to the shorter reference, which gives the
    larger, more conservative rate). PER is the sum of those distances over
    the sum of the chosen references' lengths.

    Args:
        predictions: list of predicted phone sequences, one per word.
        references: list of lists of acceptable pronunciations, one per word.

    Returns:
        PER as a float (0 is perfect; it can exceed 1 for long wrong outputs).

    Example:

    >>> phoneme_error_rate([("K", "AE", "T")], [[("K", "AE", "T", "S")]])
    0.25
    """
    _check_lengths(predictions, references)
    distance, length = 0, 0
    for pred, refs in zip(predictions, references, strict=True):
        d, n = _closest_reference(tuple(pred), [tuple(ref) for ref in refs])
        distance += d
        length += n
    return distance / max(length, 1)


def bleu(hypotheses, references):
    """Returns corpus BLEU (0-100) with sacrebleu's defaults (13a tokenizer).

    Args:
        hypotheses: list of hypothesis strings.
        references: list of reference strings, one per hypothesis.

    Example:

    >>> round(bleu(["the cat sat on the mat"], ["the cat sat on the mat"]), 6)
    100.0
    """
    import sacrebleu

    _check_lengths(hypotheses, references)
    return sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score


def chrf(hypotheses, references):
    """Returns corpus chrF (0-100) with sacrebleu's defaults.

    Args:
        hypotheses: list of hypothesis strings.
        references: list of reference strings, one per hypothesis.
    """
    import sacrebleu

    _check_lengths(hypotheses, references)
    return sacrebleu.corpus_chrf(list(hypotheses), [list(references)]).score

"""Agreement between an exported model and the Keras model it came from."""


def strip_padding(ids):
    """Returns the ids up to and including EOS (2), without trailing padding."""
    out = []
    for token in ids:
        if token == 0:
            break
        out.append(int(token))
        if token == 2:
            break
    return out


def token_agreement(reference, candidate):
    """Fraction of greedy tokens that match, position by position.

    Each pair of sequences is compared up to EOS; a position that only one
    sequence has counts as a mismatch, so a shorter or longer output lowers
    the score.

    Args:
        reference: list of id sequences (e.g. from the Keras model).
        candidate: list of id sequences from the export, in the same order.

    Returns:
        A dict with `tokens` (matching fraction of tokens), `sequences`
        (fraction of identical sequences) and `count` (sequences compared).
    """
    if len(reference) != len(candidate):
        raise ValueError(
            f"Need as many candidate sequences as references. Received: "
            f"{len(reference)} references and {len(candidate)} candidates"
        )
    same = total = identical = 0
    for ref, cand in zip(reference, candidate, strict=True):
        ref, cand = strip_padding(ref), strip_padding(cand)
        total += max(len(ref), len(cand))
        same += sum(a == b for a, b in zip(ref, cand, strict=False))
        identical += ref == cand
    count = len(reference)
    return {
        "tokens": same / total if total else 1.0,
        "sequences": identical / count if count else 1.0,
        "count": count,
    }

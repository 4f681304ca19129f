"""Sequence-level KD (Kim & Rush, 2016): train on the teacher's outputs."""

from tfaccel import data
from tfaccel.data import BOS_ID, EOS_ID, PAD_ID


def teacher_dataset(
    task,
    teacher,
    batch_size,
    shuffle=True,
    seed=0,
    log=print,
    relabel=True,
    unlabelled=(),
):
    """Returns `task`'s training dataset with targets from the teacher.

    With `relabel`, each distinct training source is decoded once by
    `teacher` and its output replaces the references (a word with two
    pronunciations gets the one the teacher says): Kim & Rush's
    sequence-level KD. Without it the training pairs keep their references.
    Each of `unlabelled` (sources of no split) is decoded by the teacher and
    added with its output as target: the labels plus the teacher's outputs
    on data that has no labels, where sequence-level KD pays most. The
    dataset has the layout of `task.dataset("train")`:
    `(inputs, targets, sample_weight)`, bucketed the same way.

    Args:
        task: a `tfaccel.tasks` task.
        teacher: a model with `generate`.
        batch_size: examples per batch.
        shuffle: reshuffle every epoch.
        seed: shuffle seed.
        log: callable for a progress line.
        relabel: replace the training references by the teacher's outputs.
        unlabelled: extra sources for the teacher to label
            (`task.unlabelled_sources()`).

    Returns:
        A `tf.data.Dataset`.
    """
    unlabelled = list(unlabelled)
    if relabel:
        sources = list(dict.fromkeys(task.sources("train")))
        log(f"Sequence-level KD: decoding {len(sources)} training sources")
        pairs = list(zip(sources, task.generate(teacher, sources), strict=True))
    else:
        encode = task.target_vocab.encode
        pairs = [(source, encode(target)) for source, target in task.pairs("train")]
    if unlabelled:
        count = len(unlabelled)
        log(f"Sequence-level KD: the teacher labels {count} unlabelled sources")
        outputs = task.generate(teacher, unlabelled)
        pairs += list(zip(unlabelled, outputs, strict=True))
    return data.make_dataset(
        pairs,
        task.source_vocab,
        _GeneratedIds(),
        batch_size,
        shuffle=shuffle,
        seed=seed,
        bucket_boundaries=task.bucket_boundaries,
        max_source_length=task.max_source_length,
        max_target_length=task.max_generate_length,
    )


class _GeneratedIds:
    """A "vocabulary" whose items are id lists (generated or encoded): cuts at EOS."""

    def encode(self, ids):
        out = []
        for token in ids:
            if token in (EOS_ID, PAD_ID):
                break
            if token != BOS_ID:
                out.append(int(token))
        return out

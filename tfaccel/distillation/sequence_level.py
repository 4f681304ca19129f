"""Sequence-level KD (Kim & Rush, 2016): train on the teacher's outputs."""

from tfaccel import data
from tfaccel.data import BOS_ID, EOS_ID, PAD_ID


def teacher_dataset(task, teacher, batch_size, shuffle=True, seed=0, log=print):
    """Returns `task`'s training dataset with the teacher's greedy outputs as targets.

    Each distinct training source is decoded once by `teacher`; its output
    replaces the references (a word with two pronunciations gets the one the
    teacher says). The dataset has the layout of `task.dataset("train")`:
    `(inputs, targets, sample_weight)`, bucketed the same way.

    Args:
        task: a `tfaccel.tasks` task.
        teacher: a model with `generate`.
        batch_size: examples per batch.
        shuffle: reshuffle every epoch.
        seed: shuffle seed.
        log: callable for a progress line.

    Returns:
        A `tf.data.Dataset`.
    """
    sources = list(dict.fromkeys(task.sources("train")))
    log(f"Sequence-level KD: decoding {len(sources)} training sources with the teacher")
    outputs = task.generate(teacher, sources)
    return data.make_dataset(
        list(zip(sources, outputs, strict=True)),
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
    """A "vocabulary" whose items are generated id lists: cuts at EOS."""

    def encode(self, ids):
        out = []
        for token in ids:
            if token in (EOS_ID, PAD_ID):
                break
            if token != BOS_ID:
                out.append(int(token))
        return out

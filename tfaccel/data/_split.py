"""Deterministic train/valid/test splits by hashing a key."""

import hashlib


def hash_split(key, train_percent, valid_percent):
    """Returns "train", "valid" or "test" for `key` by `md5(key) % 100`.

    Buckets below `train_percent` are train, the next `valid_percent` are
    valid, the rest test. The result depends on the key alone.
    """
    bucket = int(hashlib.md5(key.encode("utf-8")).hexdigest(), 16) % 100
    if bucket < train_percent:
        return "train"
    return "valid" if bucket < train_percent + valid_percent else "test"

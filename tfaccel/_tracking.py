"""Adding sublayers and variables to a layer that Keras has already built."""

import contextlib


@contextlib.contextmanager
def unlocked(layer):
    """Unlocks a built layer's tracker for the block, as Keras's `enable_lora` does.

    A built layer refuses new tracked attributes; inside the block, variables
    and sublayers set on it are tracked (and `layer._tracker.untrack` works).
    """
    locked = layer._tracker.locked
    layer._tracker.unlock()
    try:
        yield
    finally:
        if locked:
            layer._tracker.lock()

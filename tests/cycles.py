"""What a piece of work leaves for the cyclic garbage collector: objects that only a
collection can free (reference cycles no longer reachable). Error paths that keep a request,
or the engine's state, alive through an exception's traceback show up here."""

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def cyclic_garbage() -> Iterator[list]:
    """Run the block with no automatic collection; the list then holds what a collection
    right after it found unreachable (and would have freed)."""
    found: list = []
    gc.collect()
    gc.disable()
    try:
        yield found
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        found.extend(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()

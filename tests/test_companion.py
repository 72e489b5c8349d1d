"""Companion: an object in a forked process (or inline), fed calls in batches."""

import pytest

from dinv.experiments.companion import Companion


class Recorder:
    """Collects its calls; ``fail`` raises."""

    def __init__(self, start):
        self.seen = list(start)

    def add(self, value):
        self.seen.append(value)

    def fail(self):
        raise ValueError("failed in the companion")

    def result(self):
        return self.seen


@pytest.mark.parametrize("parallel", [True, False])
@pytest.mark.parametrize("batch", [1, 3])
def test_calls_arrive_in_order_and_finish_sends_the_pending_ones(parallel, batch):
    """7 calls in batches of 3 (two full messages, one left for finish): all served, in
    order, after the constructor's arguments; inline the same."""
    companion = Companion(Recorder, ([-1],), parallel=parallel, batch=batch)
    try:
        for value in range(7):
            companion.call("add", value)
        assert companion.finish("result") == [-1, 0, 1, 2, 3, 4, 5, 6]
    finally:
        companion.close()


def test_an_error_in_the_companion_is_raised_in_the_parent():
    companion = Companion(Recorder, ([],), parallel=True, batch=2)
    try:
        companion.call("add", 1)
        companion.call("fail")
        with pytest.raises(ValueError, match="failed in the companion"):
            for value in range(100):  # the error surfaces at a later call or at finish
                companion.call("add", value)
            companion.finish("result")
    finally:
        companion.kill()

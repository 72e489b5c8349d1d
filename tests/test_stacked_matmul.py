"""The dense coupling's compiled matrix products (`dinv.circuits.stacked_matmul`)."""

import warnings

import numpy as np
import pytest

from dinv.circuits import LayerCircuit
from dinv.circuits import stacked_matmul as module
from dinv.circuits.stacked_matmul import stacked_matmul
from dinv.errors import CompiledKernelWarning, InputError


def run_once(src, matrix, dst, kind):
    """Build the call for (src, matrix, dst), check it is a ``kind``, call it; the call."""
    call = stacked_matmul(src, matrix, dst)
    assert type(call).__name__ == kind
    call()
    return call


def sum_in_order(src, matrix):
    """dst[k, b, j] = sum over i of src[k, b, i] * matrix[k, i, j], added in the order of i."""
    dst = np.zeros((src.shape[0], src.shape[1], matrix.shape[2]))
    for i in range(src.shape[2]):
        dst += src[:, :, i:i + 1] * matrix[:, i:i + 1, :]
    return dst


@pytest.mark.parametrize("n, inner, cols", [(30, 20, 10), (30, 10, 20), (1, 1, 1), (3, 5, 13),
                                           (2, 784, 3), (1, 10, 1000)])
def test_kernel_is_the_ordered_sum_bit_for_bit(n, inner, cols):
    rows = 1
    rng = np.random.default_rng(n + rows + inner + cols)
    src = rng.standard_normal((n, rows, inner))
    matrix = rng.standard_normal((n, inner, cols))
    dst = np.full((n, rows, cols), np.nan)
    run_once(src, matrix, dst, "StackedMatmul")
    np.testing.assert_array_equal(dst, sum_in_order(src, matrix))
    np.testing.assert_allclose(dst, src @ matrix, rtol=1e-12, atol=1e-12 * inner)


def test_kernel_reads_and_writes_the_arrays_in_place_at_every_call():
    rng = np.random.default_rng(1)
    src, matrix = rng.standard_normal((4, 1, 6)), rng.standard_normal((4, 6, 3))
    dst = np.zeros((4, 1, 3))
    call = run_once(src, matrix, dst, "StackedMatmul")
    src[...] = rng.standard_normal(src.shape)
    matrix[2] *= -3.0
    call()
    np.testing.assert_array_equal(dst, sum_in_order(src, matrix))


def test_kernel_takes_strided_views_with_contiguous_rows():
    """Problems may be strided (views into larger arrays); rows must be contiguous."""
    rng = np.random.default_rng(2)
    big_src = rng.standard_normal((8, 5, 9))
    src = big_src[::2, 1:2, 2:7]  # strided problems, contiguous last axis
    matrix = rng.standard_normal((4, 5, 6))
    big_dst = np.zeros((4, 3, 10))
    dst = big_dst[:, 1:2, 2:8]
    run_once(src, matrix, dst, "StackedMatmul")
    np.testing.assert_array_equal(dst, sum_in_order(src, matrix))
    assert np.all(big_dst[:, ::2] == 0) and np.all(big_dst[:, :, :2] == 0)


def test_batches_keep_blas():
    """With more than one row per problem BLAS's blocked products are faster: np.matmul."""
    rng = np.random.default_rng(7)
    src, matrix = rng.standard_normal((3, 100, 20)), rng.standard_normal((3, 20, 10))
    dst = np.zeros((3, 100, 10))
    run_once(src, matrix, dst, "partial")
    np.testing.assert_array_equal(dst, np.matmul(src, matrix))


def test_layouts_the_kernel_cannot_take_fall_back_to_numpy():
    rng = np.random.default_rng(3)
    matrix = rng.standard_normal((2, 4, 4))
    strided = rng.standard_normal((2, 1, 8))[:, :, ::2]  # a row that is not contiguous
    dst = np.zeros((2, 1, 4))
    run_once(strided, matrix, dst, "partial")
    np.testing.assert_array_equal(dst, np.matmul(strided, matrix))
    overlapping = np.zeros((2, 1, 4))
    assert type(stacked_matmul(overlapping, matrix, overlapping)).__name__ == "partial"
    assert type(stacked_matmul(strided.copy(), matrix, dst, compiled=False)).__name__ == "partial"


def test_wrong_shapes_are_one_line_errors():
    with pytest.raises(InputError, match="src \\(n, rows, inner\\)"):
        stacked_matmul(np.zeros((2, 1, 3)), np.zeros((2, 4, 5)), np.zeros((2, 1, 5)))
    with pytest.raises(InputError, match="got shapes"):
        stacked_matmul(np.zeros((1, 3)), np.zeros((2, 3, 5)), np.zeros((2, 1, 5)))


def test_a_kernel_that_cannot_be_built_warns_once_and_numpy_computes(monkeypatch):
    def no_compiler(source, name):
        raise OSError("no C compiler found")

    monkeypatch.setattr(module, "compile_cython", no_compiler)
    monkeypatch.setattr(module, "_built", {})
    rng = np.random.default_rng(4)
    src, matrix, dst = rng.standard_normal((3, 1, 4)), rng.standard_normal((3, 4, 2)), \
        np.zeros((3, 1, 2))
    with pytest.warns(CompiledKernelWarning, match="no C compiler found.*np.matmul"):
        call = stacked_matmul(src, matrix, dst)
    assert type(call).__name__ == "partial"
    call()
    np.testing.assert_allclose(dst, src @ matrix)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stacked_matmul(src, matrix, dst)  # warned once per process


def test_circuits_use_the_kernel_on_cython_and_numpy_on_the_numpy_target():
    rng = np.random.default_rng(5)
    n = 4
    W = rng.standard_normal((n, 3, 5)) / np.sqrt(5)
    args = (W, -W.transpose(0, 2, 1), rng.standard_normal((n, 1, 3)), 0.1)
    settled = {}
    for target in ("cython", "numpy"):
        circuit = LayerCircuit(3, 5, n=n, codegen_target=target)
        settled[target] = circuit.settle(*args, steps=300, on_unsettled="ignore").delta
        kinds = {type(call).__name__ for calls in circuit.assembly.coupling._calls.values()
                 for call in calls}
        assert kinds == ({"StackedMatmul"} if target == "cython" else {"partial"})
    np.testing.assert_allclose(settled["cython"], settled["numpy"], rtol=1e-12, atol=1e-13)


def test_a_stacked_problem_settles_to_the_bits_of_its_solo_run():
    """The kernel computes each problem alone: stacking never changes a problem's numbers."""
    rng = np.random.default_rng(6)
    n = 5
    W = rng.standard_normal((n, 4, 7)) / np.sqrt(7)
    B = -W.transpose(0, 2, 1) + 0.1 * rng.standard_normal((n, 7, 4))
    target = rng.standard_normal((n, 1, 4))
    stacked = LayerCircuit(4, 7, n=n).settle(W, B, target, 0.1, steps=400,
                                             on_unsettled="ignore")
    solo = LayerCircuit(4, 7, n=1)
    for k in range(n):
        alone = solo.settle(W[k:k + 1], B[k:k + 1], target[k:k + 1], 0.1, steps=400,
                            on_unsettled="ignore")
        np.testing.assert_array_equal(alone.delta[0], stacked.delta[k])
        np.testing.assert_array_equal(alone.u[0], stacked.u[k])

"""The dense coupling's vector-matrix products as one compiled call per pathway and step.

A dense pathway computes ``dst[k, b] = src[k, b] @ M[k]`` for every stacked
problem k and batch row b, at every step. With one row per problem (the
regressions' online updates) and small matrices (10 x 20, 30 problems stacked),
``np.matmul`` spends most of its time in one BLAS call per problem; the kernel
here does the same products in one C loop over problems, vectorised along the
columns, in about half the time (2.5 against 4.1 us and 1.8 against 3.8 us for the
two products of 30 stacked 10 x 20 layer pairs, ``benchmarks/brian_internals.py``). With
batches of rows BLAS's blocked matrix products are 4-12 times faster than this
loop, so batches keep ``np.matmul``.

Its numbers: every output element is the sum over ``i`` of
``src[k, 0, i] * M[k, i, j]``, added in the order of ``i``, one IEEE
multiplication and addition each (`compile_cython` turns off the fusing and
reordering of floating-point operations). So problem k's products do not depend
on the other problems stacked beside it, nor on the machine. They differ from
``np.matmul``'s (whose BLAS sums in blocks) by rounding, a few units in the last
place.

The kernel is built with Brian2's compiler settings into Brian2's Cython cache,
once per machine (`compile_cython`). Circuits on the ``'numpy'``
code-generation target, batches, and arrays the kernel cannot take
(overlapping, or with rows that are not contiguous) use ``np.matmul``. When the
kernel cannot be built (no C compiler), the circuits warn once
(`CompiledKernelWarning`) and use ``np.matmul``.
"""

import warnings
from functools import partial
from typing import Any

import numpy as np

from dinv.circuits.brian_internals import compile_cython
from dinv.errors import CompiledKernelWarning, InputError

SOURCE = r'''
#cython: language_level=3
cimport numpy as cnp
cnp.import_array()

cdef extern from *:
    """
    #if defined(_MSC_VER)
    #define DINV_RESTRICT __restrict
    #else
    #define DINV_RESTRICT __restrict__
    #endif
    static void dinv_stacked_matmul(const double *DINV_RESTRICT src,
                                    const double *DINV_RESTRICT mat,
                                    double *DINV_RESTRICT dst,
                                    long n, long rows, long inner, long cols,
                                    long s0, long s1, long m0, long m1, long d0, long d1)
    {
        for (long k = 0; k < n; k++) {
            for (long b = 0; b < rows; b++) {
                const double *DINV_RESTRICT x = src + k * s0 + b * s1;
                double *DINV_RESTRICT y = dst + k * d0 + b * d1;
                for (long j = 0; j < cols; j++) y[j] = 0.0;
                for (long i = 0; i < inner; i++) {
                    const double xi = x[i];
                    const double *DINV_RESTRICT row = mat + k * m0 + i * m1;
                    for (long j = 0; j < cols; j++) y[j] += xi * row[j];
                }
            }
        }
    }
    """
    void dinv_stacked_matmul(const double *src, const double *mat, double *dst, long n,
                             long rows, long inner, long cols, long s0, long s1, long m0,
                             long m1, long d0, long d1) nogil


cdef class StackedMatmul:
    """dst[k, b] = src[k, b] @ mat[k], in place, at every call (no arguments)."""

    cdef readonly object arrays
    cdef const double *src
    cdef const double *mat
    cdef double *dst
    cdef long n, rows, inner, cols, s0, s1, m0, m1, d0, d1

    def __init__(self, cnp.ndarray src, cnp.ndarray mat, cnp.ndarray dst):
        self.arrays = (src, mat, dst)
        self.src = <const double *> cnp.PyArray_DATA(src)
        self.mat = <const double *> cnp.PyArray_DATA(mat)
        self.dst = <double *> cnp.PyArray_DATA(dst)
        self.n, self.rows, self.inner = src.shape[0], src.shape[1], src.shape[2]
        self.cols = mat.shape[2]
        self.s0, self.s1 = src.strides[0] // 8, src.strides[1] // 8
        self.m0, self.m1 = mat.strides[0] // 8, mat.strides[1] // 8
        self.d0, self.d1 = dst.strides[0] // 8, dst.strides[1] // 8

    def __call__(self):
        dinv_stacked_matmul(self.src, self.mat, self.dst, self.n, self.rows, self.inner,
                            self.cols, self.s0, self.s1, self.m0, self.m1, self.d0, self.d1)
'''

_built: dict[str, Any] = {}


def _kernel_class():
    """The compiled ``StackedMatmul`` class, or None (built once per process)."""
    if "class" not in _built:
        try:
            _built["class"] = compile_cython(SOURCE, "stacked_matmul").StackedMatmul
        except Exception as exc:  # noqa: BLE001 - any failure to build: the numpy products instead
            _built["class"] = None
            warnings.warn(f"could not compile the dense coupling's kernel "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''});"
                          " the circuits use np.matmul instead (slower; the same values to "
                          "rounding)", CompiledKernelWarning, stacklevel=3)
    return _built["class"]


def _kernel_takes(src, matrix, dst):
    """Whether the kernel pays and can compute on these arrays in place: one row per
    problem, float64, contiguous rows, no overlap."""
    arrays = (src, matrix, dst)
    return (src.shape[1] == 1 and all(a.dtype == np.float64 and a.strides[-1] == 8 and
                all(s % 8 == 0 for s in a.strides) for a in arrays)
            and not np.shares_memory(dst, src) and not np.shares_memory(dst, matrix))


def stacked_matmul(src, matrix, dst, compiled=True):
    """A call without arguments computing ``dst[k, b] = src[k, b] @ matrix[k]`` in place.

    The arrays are read and written where they are at each call, so they must
    stay alive (the call keeps references) and change only in place.

    Parameters
    ----------
    src : ndarray, shape (n, rows, inner)
    matrix : ndarray, shape (n, inner, cols)
    dst : ndarray, shape (n, rows, cols)
    compiled : bool
        Use the compiled kernel where it pays (one row per problem) and can be
        built and take the arrays; False: ``np.matmul``.

    Returns
    -------
    callable
    """
    shapes = (src.shape, matrix.shape, dst.shape)
    if not (all(len(s) == 3 for s in shapes) and src.shape[0] == matrix.shape[0] == dst.shape[0]
            and src.shape[2] == matrix.shape[1] and dst.shape[1:] == (src.shape[1],
                                                                    matrix.shape[2])):
        raise InputError(f"stacked_matmul needs src (n, rows, inner), matrix (n, inner, cols) "
                         f"and dst (n, rows, cols); got shapes {shapes}")
    if compiled and _kernel_takes(src, matrix, dst):
        kernel = _kernel_class()
        if kernel is not None:
            return kernel(src, matrix, dst)
    # partial() of a numpy function: no Python frame per call and step.
    return partial(np.matmul, src, matrix, out=dst)

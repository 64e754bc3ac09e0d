"""Starting a student's embeddings from the teacher's: copied, or reduced to a narrower width by PCA."""

from __future__ import annotations

import torch
from torch import Tensor

from distill.errors import DistillError


def pca_basis(matrix: Tensor, width: int) -> Tensor:
    """(H, width): the top `width` principal directions of the rows of a (rows, H) matrix."""
    if width > matrix.shape[1]:
        raise DistillError(
            f"cannot reduce {matrix.shape[1]}-wide teacher embeddings to a wider {width}: "
            f"choose a width of at most {matrix.shape[1]}"
        )
    centered = matrix - matrix.mean(0, keepdim=True)
    _, _, right = torch.linalg.svd(centered.double(), full_matrices=False)
    return right[:width].T.to(matrix.dtype)


def reduce_to(matrix: Tensor, width: int, basis: Tensor | None = None) -> Tensor:
    """Rows of `matrix` in `width` dimensions: unchanged if already that wide, else projected onto `basis`
    (by default the matrix's own PCA basis)."""
    if matrix.shape[1] == width:
        return matrix.clone()
    return matrix @ (pca_basis(matrix, width) if basis is None else basis)

"""Torch's module containers with their item types, for the type checker.

``nn.ModuleList`` and ``nn.ModuleDict`` hand out plain ``nn.Module`` items, so every layer read
back from one would need a cast before mypy lets it be called or its sizes be read.
``module_list`` and ``module_dict`` build the plain torch containers (same parameter names in
the state dict, nothing added at run time) and tell the type checker what they hold.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Generic, TypeVar, overload

from torch import nn

M = TypeVar("M", bound=nn.Module)

if TYPE_CHECKING:

    class ModuleList(nn.ModuleList, Generic[M]):
        def __iter__(self) -> Iterator[M]: ...
        @overload  # type: ignore[override]
        def __getitem__(self, idx: int) -> M: ...
        @overload
        def __getitem__(self, idx: slice) -> ModuleList[M]: ...
        def __getitem__(self, idx: int | slice) -> M | ModuleList[M]: ...

    class ModuleDict(nn.ModuleDict, Generic[M]):
        def __getitem__(self, key: str) -> M: ...
        def values(self) -> Iterable[M]: ...  # type: ignore[override]


def module_list(modules: Iterable[M]) -> ModuleList[M]:
    return nn.ModuleList(modules)  # type: ignore[return-value]


def module_dict(modules: Mapping[str, M]) -> ModuleDict[M]:
    return nn.ModuleDict(modules)  # type: ignore[return-value]

"""Read a PyTorch state dict saved in the legacy (non-zip) format into numpy arrays, without torch.

The legacy format is a run of pickles: a magic number, the protocol version, system info, the state dict
itself (tensors refer to storages by persistent id), the list of storage keys, then each storage's raw bytes
preceded by its element count. Unpickling runs code named by the file, so only the few callables a state
dict needs are admitted: any other global refuses the whole file.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class UnsafePickleError(ValueError):
    """The file names a callable a state dict has no need for."""


@dataclass(frozen=True)
class StorageType:
    name: str

    @property
    def dtype(self) -> np.dtype[Any]:
        return np.dtype(STORAGE_DTYPES[self.name])


@dataclass
class Storage:
    """A flat buffer, filled once the pickle that refers to it has been read."""

    key: str
    dtype: np.dtype[Any]
    size: int
    data: npt.NDArray[Any] | None = None


@dataclass(frozen=True)
class TensorView:
    storage: Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    def to_numpy(self) -> npt.NDArray[Any]:
        assert self.storage.data is not None, f"storage {self.storage.key} was never read"
        item = self.storage.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            self.storage.data[self.offset :], shape=self.shape, strides=tuple(s * item for s in self.stride)
        )
        return np.array(view, copy=True)


def _rebuild_tensor_v2(
    storage: Storage, offset: int, shape: tuple[int, ...], stride: tuple[int, ...], *_: Any
) -> TensorView:
    return TensorView(storage, offset, tuple(shape), tuple(stride))


def _rebuild_tensor(storage: Storage, offset: int, shape: tuple[int, ...], stride: tuple[int, ...]) -> TensorView:
    return TensorView(storage, offset, tuple(shape), tuple(stride))


ALLOWED_GLOBALS: dict[tuple[str, str], Callable[..., Any] | StorageType] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    **{("torch", name): StorageType(name) for name in STORAGE_DTYPES},
}


class _StateDictUnpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO, storages: dict[str, Storage]) -> None:
        super().__init__(file)
        self.storages = storages

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"refusing {module}.{name}: a state dict holds only tensors") from None

    def persistent_load(self, pid: Any) -> Storage:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise UnsafePickleError(f"unknown persistent id {pid!r}")
        _, storage_type, key, _location, size = pid[:5]
        if not isinstance(storage_type, StorageType):
            raise UnsafePickleError(f"storage {key!r} has no storage type")
        if len(pid) > 5 and pid[5] is not None:
            raise UnsafePickleError(f"storage {key!r} is a view: not written by torch >= 0.4")
        return self.storages.setdefault(str(key), Storage(str(key), storage_type.dtype, int(size)))


class _PlainUnpickler(pickle.Unpickler):
    """The header pickles hold numbers, strings and dicts only."""

    def find_class(self, module: str, name: str) -> Any:
        raise UnsafePickleError(f"refusing {module}.{name} in the file header")


def load_state_dict(source: bytes | Path) -> dict[str, npt.NDArray[Any]]:
    """The tensors of a legacy torch state dict, by name, in file order."""
    data = source.read_bytes() if isinstance(source, Path) else source
    stream = io.BytesIO(data)
    if _PlainUnpickler(stream).load() != LEGACY_MAGIC:
        raise ValueError("not a legacy torch file (a zip-format file would start with PK)")
    if (protocol := _PlainUnpickler(stream).load()) != LEGACY_PROTOCOL:
        raise ValueError(f"unsupported torch file protocol {protocol}")
    system = _PlainUnpickler(stream).load()
    if not (isinstance(system, dict) and system.get("little_endian", True)):
        raise ValueError("big-endian torch files are not supported")
    storages: dict[str, Storage] = {}
    state = _StateDictUnpickler(stream, storages).load()
    if not isinstance(state, dict):
        raise ValueError(f"the file holds a {type(state).__name__}, not a state dict")
    keys = _PlainUnpickler(stream).load()
    for key in keys:
        storage = storages[str(key)]
        (count,) = struct.unpack("<q", stream.read(8))
        if count != storage.size:
            raise ValueError(f"storage {key} holds {count} elements, expected {storage.size}")
        raw = stream.read(count * storage.dtype.itemsize)
        if len(raw) != count * storage.dtype.itemsize:
            raise ValueError(f"storage {key} is truncated")
        storage.data = np.frombuffer(raw, dtype=storage.dtype.newbyteorder("<"))
    tensors: dict[str, npt.NDArray[Any]] = {}
    for name, value in state.items():
        if not isinstance(value, TensorView):
            raise ValueError(f"{name} is a {type(value).__name__}, not a tensor")
        tensors[str(name)] = value.to_numpy()
    return tensors

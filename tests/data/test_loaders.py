"""Each loader on small files in its official format, written by the test; downloader against a local HTTP
server."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import pickle
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from art_manifold_defenses.data import DatasetFile, download_file, load_dataset
from art_manifold_defenses.data import loaders as loaders_module
from art_manifold_defenses.data.loaders import parse_idx

SHARED_MNIST = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_idx_set(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray, gz: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for kind, arr in (("images-idx3", images), ("labels-idx1", labels)):
        data = _idx_bytes(arr)
        name = f"{prefix}-{kind}-ubyte"
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)


@pytest.mark.parametrize("gz", [True, False])
def test_idx_loader_reads_official_format(tmp_path: Path, gz: bool) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=7, dtype=np.uint8)
    _write_idx_set(tmp_path / "MNIST" / "raw", "t10k", images, labels, gz)
    x, y = load_dataset("mnist", "test", root=tmp_path, download=False, verify=False)
    assert x.shape == (7, 1, 28, 28) and x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_allclose(x[:, 0] * 255, images, atol=1e-4)
    np.testing.assert_array_equal(y, labels)


def test_fashion_mnist_uses_its_own_folder(tmp_path: Path) -> None:
    images = np.full((3, 28, 28), 255, dtype=np.uint8)
    labels = np.array([1, 2, 3], dtype=np.uint8)
    _write_idx_set(tmp_path / "FashionMNIST" / "raw", "train", images, labels, gz=True)
    x, y = load_dataset("fashion-mnist", "train", root=tmp_path, download=False, verify=False)
    assert x.shape == (3, 1, 28, 28) and float(x.max()) == 1.0
    np.testing.assert_array_equal(y, [1, 2, 3])


def test_idx_checksum_mismatch_is_refused(tmp_path: Path) -> None:
    _write_idx_set(
        tmp_path / "MNIST" / "raw", "t10k", np.zeros((2, 28, 28), np.uint8), np.zeros(2, np.uint8), gz=True
    )
    with pytest.raises(ValueError, match="MD5"):
        load_dataset("mnist", "test", root=tmp_path, download=False, verify=True)


def test_parse_idx_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="IDX"):
        parse_idx(b"\x01\x02\x08\x01\x00\x00\x00\x02ab")
    truncated = _idx_bytes(np.zeros((4, 2, 2), np.uint8))[:-3]
    with pytest.raises(ValueError, match="truncated"):
        parse_idx(truncated)


def _write_cifar_batch(path: Path, n: int, seed: int) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, 10, size=n)]
    with open(path, "wb") as handle:
        pickle.dump(
            {b"batch_label": b"testing", b"labels": labels, b"data": data, b"filenames": [b"f"] * n},
            handle,
            protocol=2,
        )
    return data, labels


def test_cifar10_loader_reads_python_batches(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    expected = [_write_cifar_batch(folder / f"data_batch_{i}", 3, i) for i in range(1, 6)]
    test_data, test_labels = _write_cifar_batch(folder / "test_batch", 4, 9)
    x, y = load_dataset("cifar10", "train", root=tmp_path, download=False, verify=False)
    assert x.shape == (15, 3, 32, 32) and x.dtype == np.float32
    np.testing.assert_allclose(x[3] * 255, expected[1][0][0].reshape(3, 32, 32), atol=1e-3)
    assert list(y[:3]) == expected[0][1]
    xt, yt = load_dataset("cifar10", "test", root=tmp_path, download=False, verify=False)
    assert xt.shape == (4, 3, 32, 32) and list(yt) == test_labels
    np.testing.assert_allclose(xt[0] * 255, test_data[0].reshape(3, 32, 32), atol=1e-3)


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("pwned",))


def test_cifar10_loader_refuses_pickled_code(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    with open(folder / "test_batch", "wb") as handle:
        pickle.dump({b"data": _Evil(), b"labels": [0]}, handle)
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        load_dataset("cifar10", "test", root=tmp_path, download=False, verify=False)


def test_svhn_loader_reads_mat_and_maps_label_10_to_0(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(32, 32, 3, 5), dtype=np.uint8)
    labels = np.array([[10], [1], [2], [10], [9]], dtype=np.uint8)
    (tmp_path / "SVHN").mkdir()
    savemat(tmp_path / "SVHN" / "test_32x32.mat", {"X": images, "y": labels})
    x, y = load_dataset("svhn", "test", root=tmp_path, download=False, verify=False)
    assert x.shape == (5, 3, 32, 32)
    np.testing.assert_array_equal(y, [0, 1, 2, 0, 9])
    np.testing.assert_allclose(x[2, 1] * 255, images[:, :, 1, 2], atol=1e-3)


def test_embedded_mnist_split_and_cache(data_root: str) -> None:
    x_train, y_train = load_dataset("mnist-embedded", "train", root=data_root)
    x_test, y_test = load_dataset("mnist-embedded", "test", root=data_root)
    assert x_train.shape == (4000, 1, 28, 28) and x_test.shape == (1000, 1, 28, 28)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64
    assert 0.0 <= x_train.min() and x_train.max() <= 1.0
    assert set(np.unique(y_test)) == set(range(10))
    assert (Path(data_root) / "mnist-embedded.npz").is_file()
    again, _ = load_dataset("mnist-embedded", "train", root=data_root)
    np.testing.assert_array_equal(again, x_train)


@pytest.mark.skipif(
    not (SHARED_MNIST / "MNIST" / "raw").is_dir(), reason="full MNIST not present beside the checkout"
)
def test_full_mnist_sizes_and_range() -> None:
    x, y = load_dataset("mnist", "test", root=SHARED_MNIST, download=False)
    assert x.shape == (10000, 1, 28, 28) and x.dtype == np.float32 and y.shape == (10000,)
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0


def test_bad_names_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("imagenet", "train", root=tmp_path)
    with pytest.raises(ValueError, match="split"):
        load_dataset("mnist", "validation", root=tmp_path)
    with pytest.raises(FileNotFoundError, match="MNIST/raw"):
        load_dataset("mnist", "train", root=tmp_path, download=False)
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py"):
        load_dataset("cifar10", "test", root=tmp_path, download=False)
    with pytest.raises(FileNotFoundError, match="SVHN"):
        load_dataset("svhn", "train", root=tmp_path, download=False)


# ----------------------------------------------------------------------------------------------- downloader
@pytest.fixture
def http_folder(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A throw-away HTTP server on 127.0.0.1 serving ``tmp_path/served``."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args, **kwargs: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", served
    finally:
        server.shutdown()
        server.server_close()


def test_download_verifies_checksum(http_folder: tuple[str, Path], tmp_path: Path) -> None:
    base, served = http_folder
    payload = b"hello dataset" * 100
    (served / "file.bin").write_bytes(payload)
    good = DatasetFile("file.bin", (f"{base}/file.bin",), hashlib.md5(payload).hexdigest())
    path = download_file(good, tmp_path / "dl")
    assert path.read_bytes() == payload
    bad = DatasetFile("file.bin", (f"{base}/file.bin",), "0" * 32)
    with pytest.raises(ValueError, match="checksum mismatch"):
        download_file(bad, tmp_path / "dl2")
    assert not (tmp_path / "dl2" / "file.bin").exists()
    assert not list((tmp_path / "dl2").glob("*.part"))


def test_download_reports_unreachable_urls(http_folder: tuple[str, Path], tmp_path: Path) -> None:
    base, _ = http_folder
    missing = DatasetFile("absent.bin", (f"{base}/absent.bin",), None)
    with pytest.raises(ConnectionError, match="absent.bin"):
        download_file(missing, tmp_path)


def test_load_dataset_downloads_missing_idx_files(
    http_folder: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, served = http_folder
    images = np.arange(2 * 28 * 28, dtype=np.uint32).reshape(2, 28, 28) % 256
    labels = np.array([3, 4], dtype=np.uint8)
    files = {"t10k-images-idx3-ubyte": _idx_bytes(images), "t10k-labels-idx1-ubyte": _idx_bytes(labels)}
    table = dict(loaders_module.IDX_FILES["mnist"])
    for name, data in files.items():
        compressed = gzip.compress(data)
        (served / f"{name}.gz").write_bytes(compressed)
        table[name] = (hashlib.md5(compressed).hexdigest(),)
    monkeypatch.setitem(loaders_module.IDX_FILES, "mnist", table)
    monkeypatch.setattr(loaders_module, "_MNIST_URLS", (base,))
    x, y = load_dataset("mnist", "test", root=tmp_path / "root", download=True)
    assert x.shape == (2, 1, 28, 28) and list(y) == [3, 4]
    assert (tmp_path / "root" / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz").is_file()


def test_download_without_any_url_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file with no URL and no mirror used to end in 'tried:' followed by nothing."""
    monkeypatch.delenv("AMD_DATA_MIRROR", raising=False)
    with pytest.raises(ConnectionError, match=r"no URL is known for it .*AMD_DATA_MIRROR.*put the file in"):
        download_file(DatasetFile("nowhere.bin", (), None), tmp_path)

"""The binarized MNIST loader: fetched from a mirror, verified, converted and cached; a
file named by ``path`` or ``CONCRETE_MNIST`` used as is.  The mirror is a local
``file://`` directory of small ``.amat`` files written here, never the network."""

import hashlib
import importlib
import re

import numpy as np
import pytest

from concrete_ppl import datasets

ROWS = {"train": 5, "valid": 3, "test": 2}


def _amat_text(pixels: np.ndarray) -> bytes:
    return "".join(" ".join(map(str, row)) + "\n" for row in pixels).encode()


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """``(base_url, sha256, pixels)`` of a mirror holding three random splits; the
    environment names no file, so the loader fetches."""
    monkeypatch.delenv(datasets.ENV_VAR, raising=False)
    rng = np.random.default_rng(0)
    folder = tmp_path / "mirror"
    folder.mkdir()
    pixels, sha256 = {}, {}
    for split, rows in ROWS.items():
        pixels[split] = rng.integers(0, 2, size=(rows, 784), dtype=np.uint8)
        text = _amat_text(pixels[split])
        (folder / f"binarized_mnist_{split}.amat").write_bytes(text)
        sha256[split] = hashlib.sha256(text).hexdigest()
    return folder.as_uri() + "/", sha256, pixels


def test_first_use_fetches_verifies_converts_and_caches(mirror, tmp_path):
    base_url, sha256, pixels = mirror
    cache = tmp_path / "cache"
    path = datasets.binarized_mnist_path(base_url=base_url, sha256=sha256, cache_dir=cache)
    assert path.parent == cache
    assert sorted(p.name for p in cache.iterdir()) == ["binarized_mnist.npz"]  # .amat removed
    loaded = datasets.read_binarized_mnist(path)
    for split in ROWS:
        np.testing.assert_array_equal(loaded[split], pixels[split])
    with np.load(path) as packed:  # the format the packages read: packbits of each row
        np.testing.assert_array_equal(packed["train"], np.packbits(pixels["train"], axis=1))
    unreachable = (tmp_path / "gone").as_uri() + "/"
    assert datasets.binarized_mnist_path(base_url=unreachable, cache_dir=cache) == path


def test_a_download_that_does_not_match_its_checksum_is_an_error(mirror, tmp_path):
    base_url, sha256, _ = mirror
    wrong = {**sha256, "valid": hashlib.sha256(b"another file").hexdigest()}
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match=r"(?i)sha256.*does not match"):
        datasets.binarized_mnist_path(base_url=base_url, sha256=wrong, cache_dir=cache)
    assert not (cache / "binarized_mnist.npz").exists()


def test_offline_the_error_says_how_to_place_the_file(tmp_path, monkeypatch):
    monkeypatch.delenv(datasets.ENV_VAR, raising=False)
    unreachable = (tmp_path / "no-mirror").as_uri() + "/"
    with pytest.raises(OSError) as info:
        datasets.binarized_mnist_path(base_url=unreachable, cache_dir=tmp_path / "cache")
    message = str(info.value)
    for needed in (
        unreachable + "binarized_mnist_train.amat",  # what failed
        datasets.BINARIZED_MNIST_URL,  # where the files are published
        str(tmp_path / "cache"),  # where to copy them
        "convert_amat",
        "CONCRETE_MNIST=",
    ):
        assert needed in message


@pytest.mark.parametrize("package", ["pyro_concrete", "numpyro_concrete"])
def test_concrete_mnist_names_a_file_used_as_is(package, tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    pixels = {s: rng.integers(0, 2, size=(n, 784), dtype=np.uint8) for s, n in ROWS.items()}
    path = tmp_path / "elsewhere.npz"
    np.savez(path, **{s: np.packbits(p, axis=1) for s, p in pixels.items()})
    monkeypatch.setenv(datasets.ENV_VAR, str(path))
    loaded = importlib.import_module(package).load_binarized_mnist()
    for split in ROWS:
        assert str(loaded[split].dtype).endswith("float32")
        np.testing.assert_array_equal(np.asarray(loaded[split]), pixels[split].astype(np.float32))


@pytest.mark.parametrize("source", ["path", "CONCRETE_MNIST"])
def test_a_named_file_that_does_not_exist_is_an_error_naming_it(source, tmp_path, monkeypatch):
    missing = str(tmp_path / "missing.npz")
    monkeypatch.setenv(datasets.ENV_VAR, missing)
    with pytest.raises(FileNotFoundError, match=rf"{source}.*{re.escape(missing)}"):
        datasets.binarized_mnist_path(missing if source == "path" else None)


def test_an_amat_line_without_784_pixels_is_an_error_naming_the_file(tmp_path):
    amat = {s: tmp_path / f"{s}.amat" for s in ROWS}
    for split, file in amat.items():
        file.write_bytes(_amat_text(np.zeros((2, 784 if split != "test" else 783), np.uint8)))
    with pytest.raises(ValueError, match=r"test\.amat.*783 pixels"):
        datasets.convert_amat(amat, tmp_path / "out.npz")

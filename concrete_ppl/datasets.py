"""The fixed binarization of MNIST (Larochelle & Murray 2011) that Maddison et al. (2017,
Sec. 5.2) train on, as numpy arrays: located, or fetched once and kept.

Where the data come from, the first that applies:

1. the ``path`` given;
2. the environment variable ``CONCRETE_MNIST``;
3. ``binarized_mnist.npz`` in the user cache directory (``pooch.os_cache("concrete-ppl")``),
   made on first use: the three ``.amat`` files are downloaded from
   :data:`BINARIZED_MNIST_URL` with ``pooch``, checked against
   :data:`BINARIZED_MNIST_SHA256`, converted by :func:`convert_amat` and deleted.

The file: keys ``train`` / ``valid`` / ``test`` (50,000 / 10,000 / 10,000 rows), each row
``numpy.packbits`` of the 784 pixels.  An ``.amat`` file has one image a line, 784
space-separated ``0``/``1``.
"""

import os
import sys
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pooch

__all__ = [
    "BINARIZED_MNIST_SHA256",
    "BINARIZED_MNIST_URL",
    "ENV_VAR",
    "binarized_mnist_path",
    "convert_amat",
    "read_binarized_mnist",
]

ENV_VAR = "CONCRETE_MNIST"
PIXELS = 784
SPLITS = ("train", "valid", "test")
FILE_NAME = "binarized_mnist.npz"
#: Where Larochelle & Murray publish the three splits, ``binarized_mnist_<split>.amat``.
BINARIZED_MNIST_URL = "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/"
#: SHA-256 of each split's ``.amat`` file (78,400,000 / 15,680,000 / 15,680,000 bytes), as
#: TensorFlow Datasets records them (``url_checksums/binarized_mnist.txt``).
BINARIZED_MNIST_SHA256 = {
    "train": "ad693b29f94c14277b095f5238ddefbbdaaae0939789dd2f4f0205278cee3e4d",
    "valid": "1de3d397c40fe8eeb33dafd4099a1f665ec01e96d9be234aaeeac8a34930e2e2",
    "test": "e6687bfea3f820c174f33b7865140b2a2dd2930ef786f35d45795fc193b5ab2c",
}
_AMAT_BYTES = list(b"01 \t\r\n")  # the bytes an .amat file may hold


def _amat_name(split: str) -> str:
    return f"binarized_mnist_{split}.amat"


def _read_amat(path: str | os.PathLike) -> np.ndarray:
    """The ``(rows, 784)`` uint8 pixels of an ``.amat`` file; ``ValueError`` naming the file
    when it holds anything but ``0``/``1`` and whitespace, or a line not of 784 pixels."""
    raw = np.frombuffer(Path(path).read_bytes(), np.uint8)
    if np.delete(np.bincount(raw, minlength=256), _AMAT_BYTES).any():
        raise ValueError(f"{path} is not a binarized MNIST .amat file: characters other than 0/1")
    is_pixel = (raw == ord("0")) | (raw == ord("1"))
    starts = np.concatenate([[0], np.flatnonzero(raw == ord("\n")) + 1])
    per_line = np.add.reduceat(is_pixel, starts[starts < raw.size], dtype=np.int64)
    per_line = per_line[per_line > 0]
    if (per_line != PIXELS).any():
        raise ValueError(
            f"{path} is not a binarized MNIST .amat file: a line holds "
            f"{per_line[per_line != PIXELS][0]} pixels, {PIXELS} expected"
        )
    return (raw[is_pixel] - ord("0")).reshape(-1, PIXELS)


def convert_amat(amat: Mapping[str, str | os.PathLike], out: str | os.PathLike) -> Path:
    """Write the ``.npz`` this package reads from the three ``.amat`` files.

    :param amat: ``{"train": path, "valid": path, "test": path}``.
    :param out: the ``.npz`` to write (replaced atomically, so a reader never sees half).
    :returns: ``out`` as a :class:`~pathlib.Path`.
    """
    if set(amat) != set(SPLITS):
        raise ValueError(f"`amat` must name exactly the splits {SPLITS}, got {sorted(amat)}")
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    with open(partial, "wb") as f:
        np.savez_compressed(f, **{s: np.packbits(_read_amat(amat[s]), axis=1) for s in SPLITS})
    os.replace(partial, out)
    return out


def _copy_url(url: str, output_file: str, pooch_instance: object) -> None:
    """A ``pooch`` downloader for ``file://`` URLs (a mirror on a file system)."""
    with urllib.request.urlopen(url) as source, open(output_file, "wb") as target:
        target.write(source.read())


def _offline_error(url: str, error: Exception, cache: Path) -> OSError:
    files = ", ".join(_amat_name(s) for s in SPLITS)
    return OSError(
        f"Could not download {url} ({type(error).__name__}: {error}). To place binarized "
        f"MNIST by hand, download {files} from {BINARIZED_MNIST_URL} and either copy them "
        f"into {cache} (they are checked and converted on the next call) or convert them "
        "with concrete_ppl.datasets.convert_amat({'train': ..., 'valid': ..., 'test': ...}, "
        f"'{FILE_NAME}') and set {ENV_VAR}=/path/to/{FILE_NAME} (or pass `path`)."
    )


def binarized_mnist_path(
    path: str | os.PathLike | None = None,
    *,
    base_url: str = BINARIZED_MNIST_URL,
    sha256: Mapping[str, str] = BINARIZED_MNIST_SHA256,
    cache_dir: str | os.PathLike | None = None,
) -> Path:
    """The path of the ``.npz`` file: ``path``, else ``$CONCRETE_MNIST``, else the cached
    conversion, fetched and made on first use (module docstring).

    :param path: an ``.npz`` file to use as is.
    :param base_url: where ``binarized_mnist_<split>.amat`` are fetched from (``http(s)://``
        or ``file://``, ending in ``/``).
    :param sha256: the SHA-256 of each split's ``.amat`` file; a download that does not
        match is a ``ValueError``.
    :param cache_dir: the cache directory (default ``pooch.os_cache("concrete-ppl")``).
    :raises FileNotFoundError: ``path`` or ``$CONCRETE_MNIST`` names no file.
    :raises OSError: a download failed; the message says how to place the files by hand.
    """
    given = path if path is not None else os.environ.get(ENV_VAR) or None
    if given is not None:
        if not Path(given).is_file():
            source = "`path`" if path is not None else ENV_VAR
            raise FileNotFoundError(f"binarized MNIST not found: {source} is {str(given)!r}")
        return Path(given)
    cache = Path(cache_dir if cache_dir is not None else pooch.os_cache("concrete-ppl"))
    out = cache / FILE_NAME
    if out.is_file():
        return out
    amat = {}
    for split in SPLITS:
        url = base_url + _amat_name(split)
        try:
            amat[split] = pooch.retrieve(
                url,
                known_hash=f"sha256:{sha256[split]}",
                fname=_amat_name(split),
                path=cache,
                downloader=_copy_url if url.startswith("file:") else None,
                progressbar=sys.stderr.isatty(),
            )
        except OSError as error:
            raise _offline_error(url, error, cache) from error
    convert_amat(amat, out)
    for file in amat.values():
        os.remove(file)
    return out


def read_binarized_mnist(path: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """``{"train", "valid", "test"}`` -> ``(rows, 784)`` uint8 arrays of 0/1, from
    :func:`binarized_mnist_path` ``(path)``."""
    with np.load(binarized_mnist_path(path)) as packed:
        return {s: np.unpackbits(packed[s], axis=1)[:, :PIXELS] for s in SPLITS}

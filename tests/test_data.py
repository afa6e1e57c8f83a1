import gzip
import shutil
import struct

import numpy as np
import pytest
import torch

from lib.data import (IMAGE_DATASETS, MNIST_MD5, BatchSampler, DataError, binarize, fixed_binarization,
                      load_fashion_mnist, load_image_dataset, load_mnist)
from lib.paths import DATA_DIR


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


def test_split_sizes_shapes_and_ranges(mnist):
    assert {k: len(v) for k, v in mnist.items()} == {"train": 50_000, "val": 10_000, "test": 10_000}
    x = mnist["train"].images
    assert x.shape == (50_000, 1, 28, 28) and x.dtype == torch.float32
    assert x.min() == 0.0 and x.max() == 1.0
    # known facts of MNIST: 10 classes; the test set has 1,135 ones (LeCun et al.'s distribution)
    assert sorted(mnist["test"].labels.unique().tolist()) == list(range(10))
    assert int((mnist["test"].labels == 1).sum()) == 1135


def _copy_raw(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    shutil.copytree(DATA_DIR / "MNIST" / "raw", raw)
    return raw


def test_missing_file_names_file_and_fix(tmp_path):
    raw = _copy_raw(tmp_path)
    (raw / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz is missing.*git checkout"):
        load_mnist(tmp_path)


def test_wrong_md5_is_reported(tmp_path):
    raw = _copy_raw(tmp_path)
    path = raw / "t10k-labels-idx1-ubyte.gz"
    content = bytearray(gzip.decompress(path.read_bytes()))
    content[100] ^= 1  # one flipped bit in one label
    path.write_bytes(gzip.compress(bytes(content)))
    with pytest.raises(DataError, match=f"corrupt.*expected {MNIST_MD5['t10k-labels-idx1-ubyte']}"):
        load_mnist(tmp_path)


def test_truncated_gzip_is_reported(tmp_path):
    raw = _copy_raw(tmp_path)
    path = raw / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DataError, match="not a readable gzip"):
        load_mnist(tmp_path)


def test_uncompressed_files_are_read_too(tmp_path):
    raw = _copy_raw(tmp_path)
    for gz in raw.glob("*.gz"):  # torchvision's download leaves uncompressed files
        gz.with_suffix("").write_bytes(gzip.decompress(gz.read_bytes()))
        gz.unlink()
    assert len(load_mnist(tmp_path)["test"]) == 10_000


def test_binarize_is_bernoulli_of_grey_levels():
    grey = torch.full((200_000,), 0.3)
    x = binarize(grey)
    assert set(x.unique().tolist()) == {0.0, 1.0}
    assert abs(x.mean().item() - 0.3) < 5 * (0.3 * 0.7 / 200_000) ** 0.5
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        binarize(torch.tensor([1.5]))
    assert torch.equal(fixed_binarization(grey[:100], 3), fixed_binarization(grey[:100], 3))


def test_batch_sampler_covers_each_epoch_once():
    data = torch.arange(10.0).view(10, 1)
    s = BatchSampler(data, 5, dynamic_binarization=False)
    seen = torch.cat([s.next(), s.next()]).flatten().sort().values
    assert torch.equal(seen, torch.arange(10.0))
    s = BatchSampler(data, 2, dynamic_binarization=False)
    s.next()
    state = s.state_dict()  # mid-epoch: the rest of the permutation is in the state
    a, b = s.next(), s.next()
    s.load_state_dict(state)
    assert torch.equal(s.next(), a) and torch.equal(s.next(), b)
    with pytest.raises(ValueError, match="batch_size"):
        BatchSampler(data, 11)


def _write_idx(folder, n_train=60_000, n_test=10_000, gz=True, truncate=False):
    """Fashion-MNIST-format IDX files of zeros with a marked pixel per image (its index mod 256)."""
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        px = np.zeros((n, 28, 28), np.uint8)
        px[:, 0, 0] = np.arange(n) % 256
        images = struct.pack(">IIII", 2051, n, 28, 28) + px.tobytes()
        labels = struct.pack(">II", 2049, n) + (np.arange(n) % 10).astype(np.uint8).tobytes()
        for name, blob in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):
            blob = blob[:-100] if truncate and "images" in name else blob
            if gz:
                with gzip.open(folder / f"{name}.gz", "wb", compresslevel=1) as fh:
                    fh.write(blob)
            else:
                (folder / name).write_bytes(blob)


def test_fashion_mnist_is_read_in_mnist_format_and_split(tmp_path):
    _write_idx(tmp_path / "fm", gz=False)
    d = load_fashion_mnist(tmp_path / "fm")
    assert [len(d[k]) for k in ("train", "val", "test")] == [50_000, 10_000, 10_000]
    assert d["train"].images.shape[1:] == (1, 28, 28) and d["test"].labels.max() == 9
    assert d["val"].images[0, 0, 0, 0] == (50_000 % 256) / 255  # the val split starts at training image 50,000


def test_fashion_mnist_absent_or_truncated_says_how_to_get_it(tmp_path):
    with pytest.raises(DataError, match="apt install dataset-fashion-mnist.*") as info:
        load_fashion_mnist(tmp_path / "nothing")
    assert "torchvision.datasets.FashionMNIST" in str(info.value)
    _write_idx(tmp_path / "cut", n_train=60_000, truncate=True)
    with pytest.raises(DataError, match="bytes of pixels, the header announces"):
        load_fashion_mnist(tmp_path / "cut")


def test_image_dataset_registry_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'svhn'"):
        load_image_dataset("svhn")
    with pytest.raises(DataError, match="CelebA not found"):
        load_image_dataset("celeba64", root=tmp_path)
    with pytest.raises(DataError, match="CIFAR-10 not found"):
        load_image_dataset("cifar10", root=tmp_path)
    assert load_image_dataset("mnist")["test"].images.shape == (10_000, *IMAGE_DATASETS["mnist"])


def test_batch_sampler_drops_the_remainder_of_each_shuffle_and_resumes_exactly():
    """N = 10, batch 4: each epoch serves two full batches (8 distinct rows) and drops the other 2 rows; a sampler
    restored from state_dict (and the global RNG, which draws the next permutation) continues with the same batches."""
    from lib.data import BatchSampler

    torch.manual_seed(0)
    data = torch.arange(10.0).view(10, 1)
    s = BatchSampler(data, 4, dynamic_binarization=False)
    first_epoch = torch.cat([s.next(), s.next()]).flatten()
    assert s.epoch == 0 and len(set(first_epoch.tolist())) == 8
    state, rng = s.state_dict(), torch.get_rng_state()
    nxt = s.next()
    assert s.epoch == 1 and nxt.shape == (4, 1)
    t = BatchSampler(data, 4, dynamic_binarization=False)
    t.load_state_dict(state)
    torch.set_rng_state(rng)
    assert torch.equal(t.next(), nxt) and t.epoch == 1

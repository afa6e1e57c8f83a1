import gzip
import shutil

import pytest
import torch

from lib.data import MNIST_MD5, BatchSampler, DataError, binarize, fixed_binarization, load_mnist
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

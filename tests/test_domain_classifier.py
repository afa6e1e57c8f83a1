"""The MNIST-domain CNN and its scores: accuracy, cache, determinism; scores that separate digits from noise
and detect collapse; the notebooks' held-out protocol (DomainScores) against a direct computation; Bernoulli
prior samples. The MNIST CNN is trained once per session into a temporary cache (~20 s).
"""
import time

import pytest
import torch

from lib.data import load_mnist
from lib.domain_classifier import mnist_classifier, mnist_scores


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


# ---------------------------------------------------------------------------------------------- MNIST CNN

@pytest.fixture(scope="session")
def mnist_cnn_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("mnist_cnn_cache")


@pytest.fixture(scope="module")
def classifier(mnist_cnn_dir):
    """(network, training seconds, whether the global RNG was left as it was)."""
    rng = torch.get_rng_state()
    t = time.perf_counter()
    net = mnist_classifier(seed=0, cache_dir=mnist_cnn_dir, progress=False)
    return net, time.perf_counter() - t, torch.equal(rng, torch.get_rng_state())


def test_mnist_classifier_is_accurate_cached_and_deterministic(classifier, mnist_cnn_dir, mnist):
    net, seconds, rng_untouched = classifier
    print(f"MNIST CNN: trained in {seconds:.1f} s, test accuracy {net.test_accuracy:.4f} "
          f"(binarised {net.test_accuracy_binarized:.4f})")
    assert net.test_accuracy >= 0.97 and net.test_accuracy_binarized >= 0.96 and rng_untouched
    assert [p.name for p in mnist_cnn_dir.iterdir()] == [next(mnist_cnn_dir.glob("mnist_cnn_s0_*.pt")).name]
    again = mnist_classifier(seed=0, cache_dir=mnist_cnn_dir)  # from the cache (weights_only load)
    x = mnist["test"].images[:256]
    with torch.no_grad():
        assert torch.equal(net(x), again(x)) and again.test_accuracy == net.test_accuracy
        assert net.features(x).shape == (256, net.num_features)
    with pytest.raises(ValueError, match="28 x 28"):
        net(torch.rand(2, 1, 32, 32))


def test_mnist_scores_separate_digits_from_noise_and_detect_collapse(classifier, mnist):
    net = classifier[0]
    x, y = mnist["test"].images, mnist["test"].labels
    halves = mnist_scores(x[5000:], x[:5000], classifier=net)
    uniform = torch.rand(2000, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    noise = mnist_scores(x[5000:], uniform, classifier=net)
    ones = mnist_scores(x[5000:], x[y == 1], classifier=net)
    print(f"MNIST FD: halves {halves['mnist_fd']['value']:.3g}, noise {noise['mnist_fd']['value']:.3g}; "
          f"MNIST IS: test {halves['mnist_is']['value']:.2f}, ones {ones['mnist_is']['value']:.3f}")
    assert 10 * halves["mnist_fd"]["value"] < noise["mnist_fd"]["value"]  # measured: ~ 26 vs ~ 810
    assert halves["mnist_is"]["value"] > 8 and ones["mnist_is"]["value"] < 1.5
    assert "MNIST-specific, not FID" in halves["mnist_fd"]["implementation"]
    assert halves["mnist_fd"]["classifier_seed"] == 0 and halves["mnist_is"]["n"] == 5000


def test_bernoulli_prior_samples_follow_the_decoder_probabilities():
    from lib.nets import BernoulliDecoder
    from lib.domain_classifier import bernoulli_prior_samples

    dec = BernoulliDecoder(2, (1, 2, 2), hidden=(4,))
    with torch.no_grad():  # a decoder that ignores z: every pixel has a known probability
        for p in dec.parameters():
            p.zero_()
        dec.net[-1].bias.copy_(torch.tensor([-2.0, 0.0, 1.0, 3.0]))
    x = bernoulli_prior_samples(dec, 2, 20_000, generator=torch.Generator().manual_seed(0), block=3000)
    assert x.shape == (20_000, 1, 2, 2) and set(x.unique().tolist()) <= {0.0, 1.0}
    expected = torch.sigmoid(torch.tensor([-2.0, 0.0, 1.0, 3.0]))
    assert (x.flatten(1).mean(0) - expected).abs().max() < 0.015  # at least 4 binomial s.d. at n = 20k
    again = bernoulli_prior_samples(dec, 2, 20_000, generator=torch.Generator().manual_seed(0), block=3000)
    assert torch.equal(x, again)


def _frechet_by_svd(a: torch.Tensor, b: torch.Tensor) -> float:
    """||m_a - m_b||^2 + tr S_a + tr S_b - 2 ||A^T B||_* with S_a = A A^T (A: centred a^T / sqrt(N - 1)): the
    eigenvalues of S_a S_b are the squared singular values of A^T B. Independent of torchmetrics."""
    a, b = a.double(), b.double()
    ca, cb = (a - a.mean(0)).T / (len(a) - 1) ** 0.5, (b - b.mean(0)).T / (len(b) - 1) ** 0.5
    nuclear = torch.linalg.svdvals(ca.T @ cb).sum()
    return float((a.mean(0) - b.mean(0)).pow(2).sum() + ca.pow(2).sum() + cb.pow(2).sum() - 2 * nuclear)


def test_domain_scores_match_a_direct_computation_on_a_tiny_classifier():
    """DomainScores with a tiny random CNN: the reference x_test[:n], the held-out set x_test[n:2n], a sample set;
    the distances from the CNN's own features and logits, computed here."""
    from lib.domain_classifier import DomainScores, MNISTClassifier
    from lib.inception_metrics import inception_score

    torch.manual_seed(0)
    net = MNISTClassifier(widths=(2, 4), hidden=5).eval()
    net.seed, net.test_accuracy = 7, 0.5  # what mnist_classifier sets
    g = torch.Generator().manual_seed(1)
    x_test = torch.rand(45, 1, 28, 28, generator=g)
    fake = torch.bernoulli(torch.rand(30, 1, 28, 28, generator=g), generator=g)
    rng = torch.get_rng_state()
    domain = DomainScores(x_test, 20, net)
    got = domain.score(fake)
    assert torch.equal(rng, torch.get_rng_state())  # no random draws
    with torch.no_grad():
        f_real, f_other, f_fake = net.features(x_test[:20]), net.features(x_test[20:40]), net.features(fake)
        l_fake, l_other = net.head(f_fake), net.head(f_other)
    assert got["mnist_fd"]["value"] == pytest.approx(_frechet_by_svd(f_real, f_fake), rel=1e-6)
    assert domain.heldout["mnist_fd"]["value"] == pytest.approx(_frechet_by_svd(f_real, f_other), rel=1e-6)
    assert got["mnist_fd"]["value"] > 0 and domain.heldout["mnist_fd"]["value"] > 0
    assert got["mnist_is"]["value"] == pytest.approx(inception_score(l_fake.double(), splits=10)[0], rel=1e-9)
    assert domain.heldout["mnist_is"]["value"] == pytest.approx(inception_score(l_other.double(), splits=10)[0], rel=1e-9)
    assert (got["mnist_fd"]["n_real"], got["mnist_fd"]["n_fake"], got["mnist_is"]["n"]) == (20, 30, 30)
    assert domain.heldout["mnist_fd"]["n_fake"] == 20 and got["mnist_fd"]["classifier_seed"] == 7
    entries = domain.heldout_metrics("fmnist")
    assert list(entries) == ["heldout_test_fmnist_fd", "heldout_test_fmnist_is"]
    assert entries["heldout_test_fmnist_fd"] == {**domain.heldout["mnist_fd"], "split": "test vs disjoint test images"}
    with pytest.raises(ValueError, match="2 n = 50"):
        DomainScores(x_test, 25, net)

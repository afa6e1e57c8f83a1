"""The MNIST-domain CNN and its scores: accuracy, cache, determinism; scores that separate digits from noise
and detect collapse; Bernoulli prior samples. The MNIST CNN is trained once per session into a temporary cache (~20 s).
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


"""lib: the thin library behind the notebooks of the adversarial-VAE reference repository.

One file per concern: ``data`` (MNIST, Fashion-MNIST, CIFAR-10, CelebA 64 offline; binarisation; batches),
``toys`` (closed-form toy distributions), ``nets`` (encoders, decoders, adversaries), ``gan_nets`` (DCGAN networks),
``flows`` (invertible planar-flow encoder), ``losses`` (the losses several games share), ``vae`` / ``avb`` /
``asvae`` / ``bavae`` / ``avae`` / ``gan_baselines`` (one module per method's objective, each registering its
methods), ``registry`` (build any method by name: ``registry.build(name, x_shape=..., z_dim=...)``,
``registry.names()``), ``method`` (players, critics, settings, the sample / encode / reconstruct surface), ``train``
(the multi-player loop, checkpoints, resume, divergence guard), ``distributed`` (data-parallel training under
torchrun), ``evaluate`` (ELBO, IWAE log p(x), bits/dim and the discretised 8-bit likelihood), ``ais`` (annealed
importance sampling, BDMC), ``inception_metrics`` (FID / KID / IS offline), ``domain_classifier`` (the MNIST CNN and
its sample scores), ``reconstruction_metrics`` (MSE / RMSE, LPIPS),
``plotting`` (figures), ``runs`` (profiles, seeds, run folders, atomic files, skips), ``notebook`` (each notebook's
opening and closing, and where each profile's settings live).
"""
__version__ = "0.1.0"

import os as _os

# Worker threads of torch's OpenMP runtime sleep instead of spinning while they wait (set before torch starts its
# runtime, i.e. when lib is imported first; the runner, ``make`` and every notebook import it first). It changes no
# arithmetic. On a 2-core machine shared with one other busy process, two spinning threads ran the quick MLP VAE ~6-14x
# slower than two passive ones (python -m benchmarks.thread_contention; benchmarks/README.md). An explicit
# OMP_WAIT_POLICY in the environment wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

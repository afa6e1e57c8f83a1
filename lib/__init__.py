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

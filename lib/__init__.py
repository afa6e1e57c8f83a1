"""lib: the thin library behind the notebooks of the adversarial-VAE reference repository.

One file per concern: ``data`` (MNIST, Fashion-MNIST, CIFAR-10, CelebA 64 offline; binarisation; batches),
``toys`` (closed-form toy distributions), ``nets`` (encoders, decoders, adversaries), ``gan_nets`` (DCGAN networks),
``vae`` / ``avb`` / ``asvae`` / ``bavae`` / ``avae`` / ``gans`` (one module per method's objective), ``flows``
(invertible planar-flow encoder), ``models`` (build a method from a config), ``method`` (players and settings),
``train`` (the multi-player loop, checkpoints, resume, divergence guard), ``distributed`` (data-parallel training
under torchrun), ``evaluate`` (ELBO, IWAE log p(x), bits/dim and the discretised 8-bit likelihood), ``ais``
(annealed importance sampling, BDMC), ``sample_quality`` (FID / KID / IS offline, MNIST-domain scores, MSE / LPIPS),
``plotting`` (figures), ``runs`` (profiles, seeds, run folders, atomic files, skips), ``notebook`` (each notebook's
opening and closing, and where each profile's settings live).
"""
__version__ = "0.1.0"

"""lib: the thin library behind the notebooks of the adversarial-VAE reference repository.

One file per concern: ``data`` (MNIST offline, binarisation, batches), ``toys`` (closed-form toy
distributions), ``nets`` (encoders, decoders, adversaries), ``vae`` / ``avb`` / ``asvae`` / ``bavae`` / ``avae`` (one module per
method's objective), ``flows`` (invertible planar-flow encoder), ``models`` (build a method from a config), ``train`` (the multi-player loop,
checkpoints), ``evaluate`` (ELBO, IWAE log p(x), bits/dim and the discretised 8-bit likelihood),
``ais`` (annealed importance sampling, BDMC), ``sample_quality`` (FID / KID / IS offline, MNIST-domain
scores, MSE / LPIPS), ``plotting`` (figures), ``runs`` (profiles, seeds, run folders, atomic files).
"""
__version__ = "0.1.0"

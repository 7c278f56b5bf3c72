"""GAN metrics: fd / kid in a domain feature space, the symmetry gap, optional Inception."""

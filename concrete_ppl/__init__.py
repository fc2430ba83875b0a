"""What ``pyro_concrete`` and ``numpyro_concrete`` share without either framework: the
version of the distribution ``concrete-ppl`` and the data set loader's numpy core
(:mod:`concrete_ppl.datasets`)."""

__version__ = "0.2.0"

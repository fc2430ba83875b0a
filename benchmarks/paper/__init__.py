"""Maddison, Mnih & Teh (2017), Table 1 and the structured-prediction table, reproduced
with the library's public API.

- :mod:`.protocol`: the architectures, the paper's training protocol (App. D) with every
  departure named, the budgets (presets) and the paper's numbers (reference data);
- :mod:`.methods`: the registry of training methods (Concrete, NVIL, VIMCO, REBAR, RELAX,
  DisARM), looked up by name, with the m and models each is defined for;
- :mod:`.backends`: training (NumPyro: jitted, ``lax.scan`` over chunks of steps; Pyro: the
  parity check) and evaluation (``discrete_bound`` on whole data sets, in chunks);
- :mod:`.run`: the command line (``python -m benchmarks.paper.run --help``): one JSON per
  row, updated as it goes, checkpoints that resume, a preset that runs every row it can;
- :mod:`.options`: its options, all checked before any work;
- :mod:`.store`: a row's checkpoint and JSON, written atomically and read with clear errors;
- :mod:`.progress`: the progress lines of a row;
- :mod:`.table` and :mod:`.plot`: the markdown table and the test-bound-vs-steps figure.
"""

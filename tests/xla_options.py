"""XLA options for the suite's statistical programs.

A program that draws thousands of gradient estimates under ``jax.jit(jax.vmap(...))`` is
compiled once and run once, and its test compares means and variances with their Monte Carlo
errors: compiling it without LLVM's optimisation passes halves the compilation and leaves the
draws' distribution as it is.  Tests of numerics (support, tails, float32 rounding) compile
with XLA's defaults, as users run the library: the passes may round differently.
"""

#: ``jax.jit(..., compiler_options=FAST_COMPILE)``
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}

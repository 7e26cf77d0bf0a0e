"""The seed's fork experiment (KERNEL-NOTES 4): fork a process with N named VMAs, strdup against refcount.

Backends: the model (:mod:`anonvma.bench.fork`), real processes on the host kernel and on the
UML oracle kernels (:mod:`anonvma.bench.worker`, driven by :mod:`anonvma.bench.backends`).
``anonvma bench fork`` (:mod:`anonvma.bench.cli`) runs the sweep and writes a table, JSON and a plot.
"""

"""Differential testing: random ops scripts run on the model and on a real kernel, compared
line by line; a difference is shrunk to the smallest script that still shows it.

:mod:`.generate` makes seeded scripts, :mod:`.shrink` does delta debugging, :mod:`.compare` runs
both sides. ``python -m anonvma.difftest`` runs a batch and saves shrunk regressions.
"""

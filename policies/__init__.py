"""Pure, I/O-free rules and the declarative models users write.

Fleet, release plan, gate verdicts, residency rules, windows and wave scheduling.
"""

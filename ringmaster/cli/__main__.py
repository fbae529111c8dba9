"""``python -m ringmaster.cli``: the same as the ``ringmaster`` console script."""

from ringmaster.cli import main

main()

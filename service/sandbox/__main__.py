"""``python -m service.sandbox sandbox [...]`` and ``python -m service.sandbox check [...]``."""

from .cli import main

main()

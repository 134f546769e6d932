"""``python -m robust_compress`` runs the CLI (also under ``torchrun``)."""

from robust_compress.cli.main import main

main()

"""`python -m saleor_app.cli …`: the same commands as the `saleor-vtmarketing` console script."""

from saleor_app.cli import main

main()

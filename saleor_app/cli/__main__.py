"""`python -m saleor_app.cli …`: the same CLI as the `saleor-vtmarketing` console script (tests and benches use it
where no console script is installed)."""

from saleor_app.cli import main

main()

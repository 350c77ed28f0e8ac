"""Where the reference material the tests and benches read lives: `tests/data/` (copies; see its README)."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / "tests" / "data"
CAPTURED_DIR = DATA_DIR / "saleor" / "captured"
SCHEMA_DIR = DATA_DIR / "saleor" / "schema"
SCHEMA_3_20 = SCHEMA_DIR / "saleor-3.20.graphql"
SCHEMA_3_23 = SCHEMA_DIR / "saleor-3.23.graphql"
VTMARKETING_DIR = DATA_DIR / "vtmarketing"

"""Where the read-only reference material lives: the `shared` folder beside the repository root."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = (REPO_ROOT / ".." / "shared").resolve()
CAPTURED_DIR = SHARED_DIR / "saleor" / "captured"
SCHEMA_DIR = SHARED_DIR / "saleor" / "schema"
SCHEMA_3_20 = SCHEMA_DIR / "saleor-3.20.graphql"
SCHEMA_3_23 = SCHEMA_DIR / "saleor-3.23.graphql"

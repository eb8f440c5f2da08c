"""Model files and data files: opened read-only, validated, with one-line errors (exit 2)."""

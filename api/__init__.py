"""HTTP adapter for findling: a FastAPI app over the same SearchService as the CLI."""

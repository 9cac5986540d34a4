"""End-to-end runs behind the CLI: data → parent → children → ensemble → results on disk."""

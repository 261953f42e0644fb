"""clean: keep good documents (filter) and drop repeated ones (dedup)."""

"""timm adapter: ``timm:NAME`` models (an optional extra of robust-compress)."""

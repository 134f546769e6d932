"""brevitas."""

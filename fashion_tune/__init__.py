"""fashion-tune."""

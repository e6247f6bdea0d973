"""scopay: payment and settlement for the SCO states in their own currencies."""

__version__ = "0.1.0"

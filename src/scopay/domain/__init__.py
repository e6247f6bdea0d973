"""Pure rules of scopay: standard library only, no I/O, clock, randomness or logging."""

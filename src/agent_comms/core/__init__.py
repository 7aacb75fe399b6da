"""What every component agrees on: the message model, line identity, normalization, subjects."""

"""Memory and scale: compact optimizer state, bfloat16 training, sharded state. See README.md here."""

"""Research lines built on the library: optical memory, compression study, reading paths, vision reliance."""

"""One module per connector: how to seed a real source for the contract suite (see ../framework.py)."""

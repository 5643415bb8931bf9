"""The model zoo: one module per family; importing a module registers its models."""

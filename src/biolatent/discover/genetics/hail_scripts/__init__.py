"""Scripts run by the Python of the Hail environment (a folder of their own: nothing here shadows stdlib)."""

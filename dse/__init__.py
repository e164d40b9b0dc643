"""nmmx design-space study."""

"""Training: losses as pure functions, one trainer infrastructure, and a module per method."""

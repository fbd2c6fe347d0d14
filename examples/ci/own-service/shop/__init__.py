"""shop: the service this example repository ships (a stand-in for yours)."""

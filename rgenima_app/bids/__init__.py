"""BIDS inputs, validation and the derivatives writer."""

"""The broker: registered services and the attested requests carried to them."""

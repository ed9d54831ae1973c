"""The web application and API: the register on a map, for many users at once."""

"""Tools on top of the Store: the command line, the timeline picture, listings, the demo."""

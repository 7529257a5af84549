"""Serving a trained student: predictions written as they are made, SavedModel and
LiteRT exports."""

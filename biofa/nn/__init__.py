"""The torch back-end: a circuit compiled into batched ops with the rules' feedback."""

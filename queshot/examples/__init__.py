"""Example job handlers: what `make dev` runs with reloading on. Edit hello.py
while `make dev` runs and the next job uses the new code."""

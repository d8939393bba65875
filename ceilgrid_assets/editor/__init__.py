"""The room ceiling editor: a single page over the engine, served on loopback.

A thin shell like the command line: :mod:`.server` answers JSON requests by
calling the core (parse, validate, complete, dump) and serves the static page
in ``static/`` (plain ES modules, no build step). The browser holds the edit
history; the server keeps no per-user state.
"""

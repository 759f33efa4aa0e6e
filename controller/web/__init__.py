"""The web page (docs/web.md): server.py serves it, history.py keeps the last hours, live.py
samples the controller once a second and feeds the open pages, auth.py and controls.py are the
password and the commands; static/ is the page itself (hand-written HTML, CSS and JavaScript)."""

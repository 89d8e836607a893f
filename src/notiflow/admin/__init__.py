"""The admin UI at /ui: server-rendered pages (Jinja2 + htmx) over the same services as the API.

Sign-in is by API token for now (``session.py`` keeps who signed in); a sign-in through OpenID
Connect would set the same session keys from its callback.
"""
